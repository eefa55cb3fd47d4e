"""The train state and how it comes to be: the optimiser, the layout of every leaf on the mesh,
and the step-0 state initialised straight into that layout (abstract first: shapes and
shardings cost nothing, then either orbax restores into them or one jitted init materialises
each shard on its own device)."""
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel
from contrastive import task as task_lib


@flax.struct.dataclass
class TrainState:
    """step: updates done so far; params: trainable parameters (incl. temperature and bias);
    model_state: non-trained variables (batch-norm statistics; {} for the Transformers);
    opt_state: the optimiser's state; rng: the run's base key (raw uint32[2]), folded with
    the step inside the train step so a resumed run draws the same numbers; loss_state: the
    loss's per-example state, indexed by example id ({} for most losses, see
    `train.losses.PerExample`)."""

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array
    loss_state: Any = flax.struct.field(default_factory=dict)


# Parameters named like this are gains, offsets or scalars: never decayed (CLIP, OpenCLIP).
_NO_DECAY_NAMES = ("bias", "scale", "log_scale")


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """lr(t) = peak t / warmup for t < warmup, then peak (f + (1 - f)(1 + cos(pi u)) / 2) with
    u = (t - warmup) / (total - warmup) and f = end_learning_rate_fraction."""
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=config.learning_rate * config.end_learning_rate_fraction,
    )


def weight_decay_mask(params):
    """True for weight matrices and embedding tables (ndim >= 2, not named bias/scale); False
    for biases, norm gains, attention biases, the temperature and the SigLIP bias."""

    def decayed(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        return leaf.ndim >= 2 and not any(name.endswith(n) for n in _NO_DECAY_NAMES)

    return jax.tree_util.tree_map_with_path(decayed, params)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int):
    """(optimizer, schedule): global-norm clipping (if grad_clip_norm > 0), then AdamW with
    decoupled weight decay on the masked parameters."""
    schedule = learning_rate_schedule(config, total_steps)
    adamw = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                        weight_decay=config.weight_decay, mask=weight_decay_mask)
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adamw), schedule
    return adamw, schedule


def make_init_fn(task, optimizer, inputs, loss_state=None) -> Callable[[jax.Array], TrainState]:
    """seed key -> TrainState at step 0. `inputs` are ShapeDtypeStructs of the model's inputs
    (batch dimension included); `loss_state` the loss's per-example state at step 0 (if any)."""

    def init(key):
        init_key, state_key = jax.random.split(key)
        variables = dict(nn.meta.unbox(task_lib.init_variables(task, init_key, inputs)))
        params = variables.pop("params")
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                          opt_state=optimizer.init(params), rng=state_key,
                          loss_state=loss_state or {})

    return init


def _opt_state_shardings(abstract_opt_state, params_shardings, params_treedef, replicated):
    """Every copy of the parameter tree inside the optimiser state (Adam's moments) is laid out
    like the parameters; everything else (counts) is replicated."""
    is_params_copy = lambda node: jax.tree.structure(node) == params_treedef
    return jax.tree.map(lambda node: params_shardings if is_params_copy(node) else replicated,
                        abstract_opt_state, is_leaf=is_params_copy)


def state_shardings(task, init_fn, inputs, mesh, rules) -> TrainState:
    """The NamedSharding of every leaf of the state: parameters (and their optimiser moments)
    by the logical-axis rules, scalars and batch-norm statistics replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    variables = task_lib.variable_shardings(task, inputs, mesh, rules)
    params = variables.pop("params")
    abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
    return TrainState(
        step=replicated,
        params=params,
        model_state=variables,
        opt_state=_opt_state_shardings(abstract.opt_state, params,
                                       jax.tree.structure(abstract.params), replicated),
        rng=replicated,
        # Per-example state is small (a few floats per training example): replicated.
        loss_state=jax.tree.map(lambda _: replicated, abstract.loss_state),
    )


def abstract_state(init_fn, shardings: TrainState) -> TrainState:
    """ShapeDtypeStructs with shardings: the restore target for orbax."""
    shapes = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
    return jax.tree.map(
        lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
        shapes, shardings)


def init_state(init_fn, shardings: TrainState, seed: int, mesh, rules) -> TrainState:
    """The step-0 state, created directly in its sharded layout."""
    with parallel.sharding_context(mesh, rules):
        return jax.jit(init_fn, out_shardings=shardings)(jax.random.PRNGKey(seed))
