"""A sharded train state, abstract first: shapes and layouts cost nothing, then either orbax
restores into them or one jitted init materialises each shard on its own device."""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel
from contrastive.train.state import TrainState, opt_state_shardings


def make_init_fn(task, optimizer, inputs, loss_state=None) -> Callable[[jax.Array], TrainState]:
    """seed key -> TrainState at step 0. `inputs` are ShapeDtypeStructs of the model's inputs
    (batch dimension included); `loss_state` the loss's per-example state at step 0 (if any)."""

    def init(key):
        init_key, state_key = jax.random.split(key)
        zeros = [jnp.zeros(s.shape, s.dtype) for s in inputs]
        variables = dict(nn.meta.unbox(task.model.init(init_key, *zeros)))
        params = variables.pop("params")
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=variables,
            opt_state=optimizer.init(params),
            rng=state_key,
            loss_state=loss_state or {},
        )

    return init


def state_shardings(task, init_fn, inputs, mesh, rules) -> TrainState:
    """The NamedSharding of every leaf of the state: parameters (and their optimiser moments)
    by the logical-axis rules, scalars and batch-norm statistics replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    key = jax.random.PRNGKey(0)
    zeros = lambda: [jnp.zeros(s.shape, s.dtype) for s in inputs]
    with parallel.sharding_context(mesh, rules):
        boxed = jax.eval_shape(lambda k: task.model.init(k, *zeros()), key)
        variable_shardings = dict(parallel.param_shardings(boxed, mesh, rules))
    abstract = jax.eval_shape(init_fn, key)
    params_shardings = variable_shardings.pop("params")
    return TrainState(
        step=replicated,
        params=params_shardings,
        model_state=variable_shardings,
        opt_state=opt_state_shardings(
            abstract.opt_state, params_shardings, jax.tree.structure(abstract.params), replicated
        ),
        rng=replicated,
        # Per-example state is small (a few floats per training example): replicated.
        loss_state=jax.tree.map(lambda _: replicated, abstract.loss_state),
    )


def abstract_state(init_fn, shardings: TrainState) -> TrainState:
    """ShapeDtypeStructs with shardings: the restore target for orbax."""
    shapes = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
    return jax.tree.map(
        lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
        shapes, shardings,
    )


def init_state(init_fn, shardings: TrainState, seed: int, mesh, rules) -> TrainState:
    """The step-0 state, created directly in its sharded layout."""
    with parallel.sharding_context(mesh, rules):
        return jax.jit(init_fn, out_shardings=shardings)(jax.random.PRNGKey(seed))
