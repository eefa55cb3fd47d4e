"""The train state and how it comes to be: the optimiser, the layout of every leaf on the mesh,
and the step-0 state initialised straight into that layout (abstract first: shapes and
shardings cost nothing, then either orbax restores into them or one jitted init materialises
each shard on its own device)."""
import re
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


FROZEN = "frozen"
_group = lambda multiplier: f"lr*{float(multiplier):g}"  # a label (pytree keys must sort)


def check_locking(config: ml_collections.ConfigDict) -> None:
    """One-line errors for optimizer.locked_towers / frozen_patterns / lr_multipliers."""
    task_lib.locked_params(config.get("locked_towers", ()))
    for pattern in config.get("frozen_patterns", ()):
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"optimizer.frozen_patterns: {pattern!r} is no regex ({e})") from None
    for tower, value in dict(config.get("lr_multipliers", {})).items():
        if tower not in task_lib.TOWER_PARAMS or not value >= 0:
            raise ValueError(f"optimizer.lr_multipliers: {tower!r}: {value!r} needs a tower in "
                             f"{', '.join(task_lib.TOWER_PARAMS)} and a multiplier >= 0")


def param_labels(params, config: ml_collections.ConfigDict):
    """Each leaf's optimiser group: FROZEN for leaves of a locked tower or whose path
    ("image_tower/encoder/block0/attn/query_kernel") fully matches a frozen pattern, else its
    tower's learning-rate multiplier (1.0 for other parameters)."""
    locked = set(task_lib.locked_params(config.get("locked_towers", ())))
    patterns = [re.compile(p) for p in config.get("frozen_patterns", ())]
    multipliers = {name: float(m) for t, m in dict(config.get("lr_multipliers", {})).items()
                   for name in task_lib.TOWER_PARAMS[t]}
    used = set()

    def label(path, _):
        keys = [str(getattr(k, "key", k)) for k in path]
        hits = {p.pattern for p in patterns if p.fullmatch("/".join(keys))}
        used.update(hits)
        if keys[0] in locked or hits:
            return FROZEN
        return _group(multipliers.get(keys[0], 1.0))

    labels = jax.tree_util.tree_map_with_path(label, params)
    unused = [p.pattern for p in patterns if p.pattern not in used]
    if unused:
        raise ValueError(f"optimizer.frozen_patterns: {unused[0]!r} matches no parameter path "
                         "(paths look like 'image_tower/encoder/block0/attn/query_kernel')")
    return labels


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int):
    """(optimizer, schedule): global-norm clipping (if grad_clip_norm > 0), then AdamW with
    decoupled weight decay on the masked parameters.

    Locking (LiT, Zhai et al. 2022): parameters of `locked_towers` or matching
    `frozen_patterns` go to optax.set_to_zero under optax.multi_transform, so they get zero
    updates and no Adam moments; `lr_multipliers` scale a tower's learning rate (and so its
    decoupled decay, which AdamW multiplies by the rate)."""
    schedule = learning_rate_schedule(config, total_steps)
    check_locking(config)
    adamw_with = lambda lr: optax.adamw(lr, b1=config.b1, b2=config.b2, eps=config.eps,
                                        weight_decay=config.weight_decay,
                                        mask=weight_decay_mask)
    adamw = adamw_with(schedule)
    if (config.get("locked_towers") or config.get("frozen_patterns")
            or config.get("lr_multipliers")):
        groups = {1.0, *map(float, dict(config.get("lr_multipliers", {})).values())}
        scaled = lambda m: schedule if m == 1.0 else (lambda t: m * schedule(t))
        adamw = optax.multi_transform(
            {FROZEN: optax.set_to_zero(), **{_group(m): adamw_with(scaled(m)) for m in groups}},
            lambda params: param_labels(params, config))
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
    """Every copy of the parameter tree inside the optimiser state (Adam's moments), whole or
    with locked leaves masked out (optax.MaskedNode, under multi_transform), is laid out like
    the parameters; everything else (counts) is replicated."""
    masked = lambda node: isinstance(node, optax.MaskedNode)

    def is_params_copy(node):
        if masked(node) or not jax.tree.leaves(node, is_leaf=masked):
            return False
        filled = jax.tree.map(lambda _: 0, node, is_leaf=masked)
        return jax.tree.structure(filled) == params_treedef

    def layout(node):
        if not is_params_copy(node):
            return jax.tree.map(lambda _: replicated, node)
        return jax.tree.map(lambda leaf, sharding: leaf if masked(leaf) else sharding,
                            node, params_shardings, is_leaf=masked)

    return jax.tree.map(layout, abstract_opt_state, is_leaf=is_params_copy)


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
