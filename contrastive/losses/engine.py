"""The blockwise engine: reductions of the score matrix S = scale * X Y^T + bias, tile by tile.

Every pairwise contrastive loss is a cheap function of a few reductions of S over its rows and
columns. This module computes those reductions without ever holding S:

    row_lse[i] = log sum_j exp(S_ij)          (InfoNCE denominators, image -> text)
    col_lse[j] = log sum_i exp(S_ij)          (InfoNCE denominators, text -> image)
    row_sum[i] = sum_j phi(S_ij, i, j)        (elementwise terms, e.g. SigLIP's log-sigmoids)

A loss (see `clip.py`, `siglip.py`) is then a few lines of ordinary JAX on these (N,) vectors and
on the O(N d) positive-pair scores, and JAX's autodiff composes it with the engine's own VJP.

Forward: a scan over row tiles, and inside it a scan over column tiles. Each (b, b) tile of S is
formed, folded into running (max, sum-of-exp) pairs for its rows and columns (the online
log-sum-exp), and dropped. Backward (`jax.custom_vjp`): the same double scan recomputes each tile
from the saved embeddings and the saved row/column log-sum-exps, forms the tile of

    dL/dS_ij = g_row[i] softmax_j(S)_ij + g_col[j] softmax_i(S)_ij + g_sum[i] phi'(S_ij)

and accumulates dX = scale dS Y, dY = scale dS^T X, d scale = sum_ij dS_ij <x_i, y_j> and
d bias = sum_ij dS_ij. Memory is O(N d + b^2); the cost is four N x N x d matmuls (one forward,
three backward) against three for a dense loss that keeps S.

Sharded (`axis_name` given, inside `shard_map` over the batch axes): each device holds N/P rows
of x and of y. The row sweep above runs against every device's y block in turn as the blocks
travel around a ring (`parallel.ring`); a block's column statistics (forward) and its dY
(backward) travel with it and arrive home complete. Per-device memory is O(N/P d + b^2).

Statistics (scores, maxima, sums, gradients of S) are float32 for bf16/f16/f32 inputs and float64
for float64 inputs: exp and log of scores of magnitude up to `scale` lose all precision in 16 bits.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from contrastive.losses.tiling import Tiling, lse_update, scores
from contrastive.parallel.ring import AxisName, as_varying, ring_index, ring_loop, ring_size

Array = jax.Array

# Largest tile edge when the caller does not choose, per backend. On CPU 512 x 512 float32 scores
# (1 MiB) stay in cache and ran fastest (experiments/loss_memory.py); accelerators need large
# tiles so that each loop iteration's matmuls amortise its fixed launch cost (not yet tuned).
DEFAULT_BLOCK_SIZE = {"cpu": 512}
ACCELERATOR_BLOCK_SIZE = 4096

# phi(s, row_ids, col_ids) -> elementwise values; s is a (b, b) tile of scores in the statistics
# dtype, row_ids (b, 1) and col_ids (1, b) the tile's global int32 row and column indices.
PairFn = Callable[[Array, Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Reductions:
    """Which reductions of S a loss needs. Hashable, so it can be a static argument."""

    row_lse: bool = False
    col_lse: bool = False
    pair_fn: Optional[PairFn] = None


class Stats(NamedTuple):
    """The engine's outputs, each (N,) in the statistics dtype, or None when not requested."""

    row_lse: Optional[Array]
    col_lse: Optional[Array]
    row_sum: Optional[Array]


def stats_dtype(dtype) -> jnp.dtype:
    """float32 for 16- and 32-bit inputs, float64 for float64 inputs."""
    return jnp.promote_types(dtype, jnp.float32)


def check_inputs(x, y, scale, bias=None, block_size=None) -> None:
    """Raises one clear ValueError for a caller's mistake, before JAX sees the inputs."""
    shapes = f"x.shape={jnp.shape(x)}, y.shape={jnp.shape(y)}"
    if jnp.ndim(x) != 2 or jnp.ndim(y) != 2:
        raise ValueError(f"x and y must be 2-D (batch, dim) embeddings; got {shapes}.")
    if jnp.shape(x) != jnp.shape(y):
        raise ValueError(f"x and y must have the same shape (paired rows); got {shapes}.")
    if jnp.shape(x)[0] == 0:
        raise ValueError(f"The batch is empty; got {shapes}.")
    for name, a in (("x", x), ("y", y)):
        if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
            raise ValueError(f"{name} must be floating point; got dtype {jnp.result_type(a)}.")
    for name, a in (("scale", scale), ("bias", bias)):
        if a is not None and jnp.ndim(a) != 0:
            raise ValueError(f"{name} must be a scalar; got shape {jnp.shape(a)}.")
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0
    ):
        raise ValueError(f"block_size must be a positive int or None; got {block_size!r}.")


def common_dtype(x, y):
    """x and y promoted to one float dtype."""
    dtype = jnp.result_type(x, y)
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype)


def choose_block_size(n: int, block_size: Optional[int] = None, backend: Optional[str] = None) -> int:
    """The tile edge: the caller's, else the fewest tiles of at most the backend's default edge,
    evened out so that padding is at most a few rows (CPU: N = 500 -> one tile of 500;
    1500 -> 3 x 500; 1025 -> 3 x 342)."""
    if block_size is not None:
        return min(block_size, n)
    backend = backend or jax.default_backend()
    largest = DEFAULT_BLOCK_SIZE.get(backend, ACCELERATOR_BLOCK_SIZE)
    num_tiles = math.ceil(n / largest)
    return math.ceil(n / num_tiles)


def pairwise_stats(
    x: Array,
    y: Array,
    scale: Array,
    bias: Optional[Array],
    reductions: Reductions,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> Stats:
    """The requested reductions of S = scale * x @ y.T + bias, never materialising S.

    Args:
      x, y: (n, d) embeddings, any float dtype (equal shapes and dtypes: checked by the losses);
        with `axis_name`, this device's shard of the (N = n P, d) global batch.
      scale: scalar multiplier of the scores; receives a gradient.
      bias: scalar added to the scores, or None for no bias; receives a gradient.
      reductions: which of row_lse, col_lse and row_sum to compute.
      block_size: tile edge b (see `choose_block_size`); n need not be a multiple of it.
      axis_name: the `shard_map` mesh axis (or axes) the batch is split over, or None.

    Returns:
      Stats of this device's n rows (row_lse, row_sum) and n columns (col_lse), each reduced
      over the whole global batch.
    """
    block = choose_block_size(x.shape[0], block_size)
    dtype = stats_dtype(x.dtype)
    scale = jnp.asarray(scale, dtype)
    bias = None if bias is None else jnp.asarray(bias, dtype)
    return _pairwise_stats(x, y, scale, bias, reductions, block, axis_name)


def global_mean(v: Array, axis_name: AxisName = None) -> Array:
    """Mean of a per-row vector over the global batch (all shards when sharded)."""
    total = jnp.sum(v)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    return total / (v.shape[0] * ring_size(axis_name))


# ---------------------------------------------------------------------------------------------
# Forward: for each y block (local, or each of the ring's), a scan over row tiles with a scan
# over column tiles inside; running row statistics stay, running column statistics travel.


def _forward(x, y, scale, bias, reductions: Reductions, block: int, axis_name) -> Stats:
    tiling = Tiling.of(x.shape[0], block)
    dtype = scale.dtype
    row_ids = tiling.ids(ring_index(axis_name) * tiling.n)
    x_tiles = tiling.split(x)

    def sweep(row_state, y_block, col_state):
        y_tiles, col_ids = y_block

        def row_tile_step(col_state, row_in):
            x_i, row_ids_i, row_state_i = row_in

            def col_tile_step(row_state_i, col_in):
                (row_m, row_l, row_s), (y_j, col_ids_j, col_m, col_l) = row_state_i, col_in
                s = scores(x_i, y_j, scale, bias, dtype)
                row_valid, col_valid = _validity(tiling, row_ids_i, col_ids_j)
                if reductions.row_lse:  # padded columns are not in a row's denominator
                    row_m, row_l = lse_update(row_m, row_l, s, col_valid, axis=1)
                if reductions.col_lse:  # padded rows are not in a column's denominator
                    col_m, col_l = lse_update(col_m, col_l, s, row_valid, axis=0)
                if reductions.pair_fn is not None:
                    phi = reductions.pair_fn(s, row_ids_i[:, None], col_ids_j[None, :])
                    if tiling.padded:
                        phi = jnp.where(row_valid & col_valid, phi, 0)
                    row_s = row_s + jnp.sum(phi, axis=1)
                return (row_m, row_l, row_s), (col_m, col_l)

            row_state_i, col_state = jax.lax.scan(
                col_tile_step, row_state_i, (y_tiles, col_ids, *col_state)
            )
            return col_state, row_state_i

        col_state, row_state = jax.lax.scan(row_tile_step, col_state, (x_tiles, row_ids, row_state))
        return row_state, col_state

    neg_inf, zeros = as_varying(
        (jnp.full((tiling.num_tiles, block), -jnp.inf, dtype),
         jnp.zeros((tiling.num_tiles, block), dtype)),
        axis_name,
    )
    (row_m, row_l, row_s), (col_m, col_l) = ring_loop(
        sweep, (neg_inf, zeros, zeros), (tiling.split(y), row_ids), (neg_inf, zeros), axis_name
    )
    return Stats(
        row_lse=tiling.merge(row_m + jnp.log(row_l)) if reductions.row_lse else None,
        col_lse=tiling.merge(col_m + jnp.log(col_l)) if reductions.col_lse else None,
        row_sum=tiling.merge(row_s) if reductions.pair_fn is not None else None,
    )


def _validity(tiling: Tiling, row_ids, col_ids):
    """(b, 1) and (1, b) masks of real (non-padding) rows and columns, or None without padding."""
    if not tiling.padded:
        return None, None
    return (row_ids >= 0)[:, None], (col_ids >= 0)[None, :]


# ---------------------------------------------------------------------------------------------
# Backward: the same sweeps recompute each tile, form dL/dS for it and accumulate the gradients;
# dX stays with its rows, dY travels with its block.


def _backward(x, y, scale, bias, stats: Stats, cotangents: Stats, reductions, block, axis_name):
    tiling = Tiling.of(x.shape[0], block)
    dtype = scale.dtype
    row_ids = tiling.ids(ring_index(axis_name) * tiling.n)
    zeros = as_varying(jnp.zeros((tiling.num_tiles, block), dtype), axis_name)

    def tiles_or_zeros(v):  # None (not requested, or no cotangent flowed) -> zeros
        return zeros if v is None else tiling.split(v.astype(dtype))

    x_tiles = tiling.split(x)
    row_lse, g_row = tiles_or_zeros(stats.row_lse), tiles_or_zeros(cotangents.row_lse)
    g_sum = tiles_or_zeros(cotangents.row_sum)
    tile_index = jnp.arange(tiling.num_tiles)

    # The gradient accumulators are loop carries updated one tile at a time (not scan inputs
    # mapped to outputs), so XLA updates them in place: one buffer each, which matters most for
    # the ring, where the block's dY is also in flight.
    def sweep(row_acc, y_block, dy_tiles):
        dx_tiles, dbias = row_acc
        y_tiles, col_ids, col_lse, g_col = y_block

        def row_tile_step(acc, row_in):
            dx_tiles, dy_tiles, dbias = acc
            i, x_i, row_ids_i, row_lse_i, g_row_i, g_sum_i = row_in

            def col_tile_step(acc, col_in):
                dx_i, dy_tiles, dbias = acc
                j, y_j, col_ids_j, col_lse_j, g_col_j = col_in
                s = scores(x_i, y_j, scale, bias, dtype)
                ds = jnp.zeros_like(s)
                if reductions.row_lse:  # d row_lse_i / d S_ij = softmax over j
                    ds += g_row_i[:, None] * jnp.exp(s - row_lse_i[:, None])
                if reductions.col_lse:  # d col_lse_j / d S_ij = softmax over i
                    ds += g_col_j[None, :] * jnp.exp(s - col_lse_j[None, :])
                if reductions.pair_fn is not None:
                    phi = functools.partial(
                        reductions.pair_fn, row_ids=row_ids_i[:, None], col_ids=col_ids_j[None, :]
                    )
                    ds += jax.vjp(phi, s)[1](jnp.broadcast_to(g_sum_i[:, None], s.shape))[0]
                if tiling.padded:  # padding is in no reduction, so it gets no gradient
                    row_valid, col_valid = _validity(tiling, row_ids_i, col_ids_j)
                    ds = jnp.where(row_valid & col_valid, ds, 0)
                # The matmuls take dS in the input dtype (bf16 stays on the fast path) and
                # accumulate in the statistics dtype.
                ds_in = ds.astype(x.dtype)
                dx_i += jnp.dot(ds_in, y_j, preferred_element_type=dtype)
                dy_tiles = dy_tiles.at[j].add(jnp.dot(ds_in.T, x_i, preferred_element_type=dtype))
                if bias is not None:
                    dbias += jnp.sum(ds)
                return (dx_i, dy_tiles, dbias), None

            (dx_i, dy_tiles, dbias), _ = jax.lax.scan(
                col_tile_step, (dx_tiles[i], dy_tiles, dbias),
                (tile_index, y_tiles, col_ids, col_lse, g_col),
            )
            return (dx_tiles.at[i].set(dx_i), dy_tiles, dbias), None

        (dx_tiles, dy_tiles, dbias), _ = jax.lax.scan(
            row_tile_step, (dx_tiles, dy_tiles, dbias),
            (tile_index, x_tiles, row_ids, row_lse, g_row, g_sum),
        )
        return (dx_tiles, dbias), dy_tiles

    grad_tiles, dbias = as_varying(
        (jnp.zeros((tiling.num_tiles, block, x.shape[1]), dtype), jnp.zeros((), dtype)),
        axis_name,
    )
    y_block = (tiling.split(y), row_ids, tiles_or_zeros(stats.col_lse),
               tiles_or_zeros(cotangents.col_lse))
    (dx_tiles, dbias), dy_tiles = ring_loop(
        sweep, (grad_tiles, dbias), y_block, grad_tiles, axis_name
    )
    # Gradients of G = X Y^T, where S = scale * G + bias.
    dg_y, dg_x = tiling.merge(dx_tiles), tiling.merge(dy_tiles)  # dG Y and dG^T X
    dscale = jnp.sum(x.astype(dtype) * dg_y)  # sum_ij dS_ij G_ij = sum_i <x_i, (dS Y)_i>
    if axis_name is not None:  # scale and bias are shared by all shards: sum their gradients
        dscale, dbias = jax.lax.psum((dscale, dbias), axis_name)
    dx = (scale * dg_y).astype(x.dtype)
    dy = (scale * dg_x).astype(y.dtype)
    return dx, dy, dscale, None if bias is None else dbias


# ---------------------------------------------------------------------------------------------
# The custom VJP tying the two together.


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _pairwise_stats(x, y, scale, bias, reductions, block, axis_name):
    return _forward(x, y, scale, bias, reductions, block, axis_name)


def _pairwise_stats_fwd(x, y, scale, bias, reductions, block, axis_name):
    stats = _forward(x, y, scale, bias, reductions, block, axis_name)
    return stats, (x, y, scale, bias, stats)


def _pairwise_stats_bwd(reductions, block, axis_name, residuals, cotangents):
    x, y, scale, bias, stats = residuals
    return _backward(x, y, scale, bias, stats, cotangents, reductions, block, axis_name)


_pairwise_stats.defvjp(_pairwise_stats_fwd, _pairwise_stats_bwd)
