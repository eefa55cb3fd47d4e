"""From logical names to `NamedSharding`s: parameters and batches."""
import contextlib
import math
from typing import Any

import flax.linen as nn
import jax
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


def batch_shards(mesh: Mesh) -> int:
    """Into how many pieces the batch is split: the product of the mesh's batch axes."""
    return math.prod(mesh.shape[axis] for axis in BATCH_AXES if axis in mesh.shape)
