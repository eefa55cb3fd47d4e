"""What a loss asks of the engine: reductions over rows and columns of elementwise functions of S.

    row_lse[i] = log sum_j exp f(S_ij, row_i, col_j)      col_lse[j] = log sum_i exp f(...)
    row_sum[i] = sum_j g(S_ij, row_i, col_j)              col_sum[j] = sum_i g(...)

f and g are elementwise functions of a (b, b) tile of scores and of the tile's `Side`s (global
ids and the loss's per-example features: labels, temperatures, frozen embeddings...). They may
return a pytree of tiles (one reduction each), and f may return -inf to leave a pair out of a
denominator. `True` for an lse means f(S) = S. Each loss states its reductions once, as a
module-level constant, so that they are hashable static arguments of the engine.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from contrastive.losses.tiling import Side

Array = jax.Array

# f(s, row, col) -> pytree of (b, b) tiles; s in the statistics dtype, row and col `Side`s.
PairFn = Callable[[Array, Side, Side], Any]

ROW_SIDE = ("row_lse", "row_sum")  # reduced over columns: stay with their rows
COL_SIDE = ("col_lse", "col_sum")  # reduced over rows: travel with their column block


def _scores(s, row, col):
    del row, col
    return s


def pair_nll(s, row, col):
    """SigLIP's pair term -log sigmoid(z_ij s_ij), z_ij = +1 for the paired i == j and -1
    otherwise (the fused kernels recognise this function: `losses.pallas`)."""
    z = jnp.where(row.ids[:, None] == col.ids[None, :], 1.0, -1.0).astype(s.dtype)
    return jax.nn.softplus(-z * s)  # = -log sigmoid(z s), stable for |s| up to any scale


@dataclasses.dataclass(frozen=True)
class Reductions:
    """Which reductions of S a loss needs. Hashable, so it can be a static argument."""

    row_lse: Union[bool, PairFn] = False
    col_lse: Union[bool, PairFn] = False
    row_sum: Optional[PairFn] = None
    col_sum: Optional[PairFn] = None

    def functions(self) -> dict[str, PairFn]:
        """The requested reductions' elementwise functions, by name."""
        fns = {}
        for name in ROW_SIDE + COL_SIDE:
            fn = getattr(self, name)
            if fn is True:
                fn = _scores
            if fn:
                fns[name] = fn
        return fns

    def tile_terms(self, s, row: Side, col: Side, dtype) -> dict[str, list]:
        """{name: [(b, b) tiles, one per output leaf]} for one tile of scores."""
        return {
            name: [jnp.asarray(t, dtype) for t in jax.tree.leaves(fn(s, row, col))]
            for name, fn in self.functions().items()
        }

    def output_structure(self, s, row: Side, col: Side) -> dict[str, Any]:
        """{name: treedef of its output}, checked to be (b, b) tiles, from abstract inputs."""
        structure = {}
        for name, fn in self.functions().items():
            out = jax.eval_shape(fn, s, row, col)
            for leaf in jax.tree.leaves(out):
                if leaf.shape != s.shape:
                    raise ValueError(
                        f"the {name} function must return tiles of the scores' shape {s.shape} "
                        f"(elementwise in i, j); got {leaf.shape}")
            structure[name] = jax.tree.structure(out)
        return structure


class Stats(NamedTuple):
    """The engine's outputs: per requested reduction, its function's pytree with each (b, b)
    tile replaced by the reduced (N,) vector in the statistics dtype; None when not requested."""

    row_lse: Any = None
    col_lse: Any = None
    row_sum: Any = None
    col_sum: Any = None

    @classmethod
    def from_leaves(cls, structure: dict, leaves: dict) -> "Stats":
        return cls(**{name: structure[name].unflatten(leaves[name]) for name in structure})

    def leaves(self, names) -> dict[str, Optional[list]]:
        """{name: its leaves, or None when the value is None (no cotangent flowed there)}."""
        return {n: None if getattr(self, n) is None else jax.tree.leaves(getattr(self, n))
                for n in names}


def is_float(a) -> bool:
    return jnp.issubdtype(a.dtype, jnp.inexact)


def float_leaves(tree) -> list:
    """The floating-point leaves of per-example features: the ones that receive gradients."""
    return [a for a in jax.tree.leaves(tree) if is_float(a)]


def replace_float_leaves(tree, new: list):
    """`tree` with its floating-point leaves replaced, in order, by `new`."""
    leaves, treedef = jax.tree.flatten(tree)
    new = iter(new)
    return treedef.unflatten([next(new) if is_float(a) else a for a in leaves])


def tile_structure(reductions: Reductions, block: int, dtype, row_data, col_data) -> dict:
    """`Reductions.output_structure` for (block, block) tiles of `dtype` scores."""
    def side(data):
        ids = jax.ShapeDtypeStruct((block,), jnp.int32)
        return Side(ids, jax.tree.map(
            lambda a: jax.ShapeDtypeStruct((block,) + a.shape[1:], a.dtype), data))

    s = jax.ShapeDtypeStruct((block, block), dtype)
    return reductions.output_structure(s, side(row_data), side(col_data))
