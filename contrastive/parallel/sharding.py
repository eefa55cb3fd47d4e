"""From logical names to `NamedSharding`s: parameters, batches, and sharded initialisation."""
import contextlib
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from contrastive.parallel.rules import DEFAULT_RULES, Rules, check_rules

BATCH_AXES = ("data", "fsdp")


@contextlib.contextmanager
def sharding_context(mesh: Mesh, rules: Rules = DEFAULT_RULES):
    """Activates `mesh` and `rules` so the models' `nn.with_logical_constraint`s take effect.

    Trace (jit, eval_shape) the model's init and apply inside it; outside, they are no-ops.
    """
    check_rules(rules)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield


def _unbox(tree: Any) -> Any:
    """The values inside flax's partitioning boxes, without applying sharding constraints."""
    return jax.tree_util.tree_map(
        lambda x: x.value if isinstance(x, nn.Partitioned) else x,
        tree,
        is_leaf=lambda x: isinstance(x, nn.Partitioned),
    )


def _path(key_path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in key_path)


def _mesh_axes(entry) -> tuple[str, ...]:
    return (entry,) if isinstance(entry, str) else tuple(entry or ())


def _check_divisible(tree: Any, specs: Any, mesh: Mesh, logical: Any = None) -> None:
    """Raises one ValueError listing every array dimension not divisible by its mesh axes."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    is_spec = lambda x: isinstance(x, PartitionSpec)
    spec_leaves = jax.tree_util.tree_leaves(specs, is_leaf=is_spec)
    name_leaves = (
        jax.tree_util.tree_leaves(logical, is_leaf=is_spec) if logical is not None
        else [None] * len(spec_leaves)
    )
    problems = []
    for (key_path, leaf), spec, names in zip(leaves, spec_leaves, name_leaves):
        for dim, entry in enumerate(spec):
            axes = _mesh_axes(entry)
            parts = math.prod(mesh.shape[axis] for axis in axes)
            if leaf.shape[dim] % parts:
                name = f" (logical axis {names[dim]!r})" if names is not None else ""
                where = (f"mesh axis {axes[0]!r}" if len(axes) == 1
                         else "mesh axes " + " x ".join(map(repr, axes)))
                problems.append(
                    f"{_path(key_path)}: dimension {dim}{name} has size {leaf.shape[dim]}, not "
                    f"divisible by {where} of size {parts}"
                )
    if problems:
        raise ValueError("cannot shard evenly:\n  " + "\n  ".join(problems))


def param_shardings(variables: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Any:
    """NamedSharding tree for a boxed variables tree (real or from `jax.eval_shape(model.init)`).

    The result has the structure of the unboxed tree (`nn.meta.unbox(variables)`); leaves without
    logical names (e.g. batch-norm statistics) are replicated. Raises ValueError if a parameter
    uses a logical name the rules do not list, or a dimension is not divisible by its mesh axes.
    """
    check_rules(rules)
    is_spec = lambda x: isinstance(x, PartitionSpec)
    logical = nn.get_partition_spec(variables)
    known = {name for name, _ in rules}
    for key_path, spec in jax.tree_util.tree_flatten_with_path(logical, is_leaf=is_spec)[0]:
        unknown = [name for name in spec if isinstance(name, str) and name not in known]
        if unknown:
            raise ValueError(
                f"{_path(key_path)} uses logical axes {unknown} that the rules do not name; "
                f"they name {sorted(known)}"
            )
    specs = nn.logical_to_mesh(logical, rules)
    _check_divisible(_unbox(variables), specs, mesh, logical)
    return jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), specs, is_leaf=is_spec)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over (data, fsdp), the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Places a tree of host arrays onto the mesh with `batch_sharding`.

    Each process passes its own slice of the global batch (all of it on one host); the global
    arrays are assembled with `jax.make_array_from_process_local_data`. Raises ValueError naming
    the array when the global batch is not divisible by data x fsdp.
    """
    sharding = batch_sharding(mesh)
    processes = jax.process_count()
    global_shapes = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((x.shape[0] * processes, *x.shape[1:]), x.dtype), batch
    )
    specs = jax.tree_util.tree_map(lambda _: sharding.spec, batch)
    _check_divisible(global_shapes, specs, mesh)
    return jax.tree_util.tree_map(
        lambda x, s: jax.make_array_from_process_local_data(sharding, x, s.shape),
        batch,
        global_shapes,
    )


def init_sharded(model: nn.Module, rng: jax.Array, *example_inputs: Any, mesh: Mesh,
                 rules: Rules = DEFAULT_RULES, **init_kwargs: Any) -> tuple[Any, Any]:
    """Initialises `model` straight into its sharded layout; no device ever holds all of it.

    Abstract first: `jax.eval_shape(model.init)` gives shapes and logical names at no cost; the
    rules turn them into shardings; then `jit(init, out_shardings=...)` materialises each shard
    on its own device. `example_inputs` may be arrays or `jax.ShapeDtypeStruct`s (only shapes and
    dtypes are used). Returns (variables, shardings): unboxed variables (plain arrays) and the
    NamedSharding tree of the same structure, for the train step's in/out shardings.
    """
    shapes = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in example_inputs]

    def init(rng):
        inputs = [jnp.zeros(s.shape, s.dtype) for s in shapes]
        return model.init(rng, *inputs, **init_kwargs)

    with sharding_context(mesh, rules):
        abstract = jax.eval_shape(init, rng)
        shardings = param_shardings(abstract, mesh, rules)
        variables = jax.jit(lambda r: nn.meta.unbox(init(r)), out_shardings=shardings)(rng)
    return variables, shardings
