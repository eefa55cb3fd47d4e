"""The blockwise engine: reductions of the score matrix S = scale * X Y^T + bias, tile by tile.

Every pairwise contrastive loss is a cheap function of a few reductions of S over its rows and
columns. This module computes those reductions without ever holding S:

    row_lse[i] = log sum_j exp f(S_ij, i, j)    (InfoNCE denominators, image -> text)
    col_lse[j] = log sum_i exp f(S_ij, i, j)    (InfoNCE denominators, text -> image)
    row_sum[i] = sum_j g(S_ij, i, j)            (elementwise terms, e.g. SigLIP's log-sigmoids)
    col_sum[j] = sum_i g(S_ij, i, j)

where f and g are the loss's elementwise functions of a score and of per-example features of
row i and column j (`reductions.py`: labels, temperatures, positive scores, frozen embeddings).
A loss (`clip.py`, `siglip.py`, ...) is then a few lines of ordinary JAX on these (N,) vectors
and on the O(N d) positive-pair scores, and JAX's autodiff composes it with the engine's VJP.

Forward (`engine_forward.py`): a scan over row tiles, and inside it a scan over column tiles.
Each (b, b) tile of S is formed, folded into running (max, sum-of-exp) pairs for its rows and
columns (the online log-sum-exp) and running sums, and dropped. Backward (`engine_backward.py`,
`jax.custom_vjp`): the same double scan recomputes each tile from the saved embeddings and
statistics, forms the tile of dL/dS (and the features' gradients) and accumulates
dX = scale dS Y, dY = scale dS^T X, d scale = sum_ij dS_ij <x_i, y_j> and d bias = sum_ij dS_ij.
Memory is O(N d + b^2); the cost is four N x N x d matmuls (one forward, three backward) against
three for a dense loss that keeps S.

Sharded (`axis_name` given, inside `shard_map` over the batch axes): each device holds N/P rows
of x and of y. The row sweep above runs against every device's y block in turn as the blocks
travel around a ring (`parallel.ring`); a block's column statistics (forward) and its dY
(backward) travel with it and arrive home complete. Blocks travel in pieces of whole tiles (at
most `tiling.RING_CHUNKS` of them, one ring per piece), so beyond its own x, y, dX and dY a
device holds only a piece of a visiting block, of its dY and their copies in flight, and a few
tiles: per-device memory 4 N/P d + O(N/P d / RING_CHUNKS + b^2 + b d) numbers (0.14 of one
device's at N = 65,536 on P = 8, experiments/ring_memory.py). dX and dY accumulate in flat
(n, d) buffers that become the gradients in place.

Statistics (scores, maxima, sums, gradients of S) are float32 for bf16/f16/f32 inputs and float64
for float64 inputs: exp and log of scores of magnitude up to `scale` lose all precision in 16 bits.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp

from contrastive.losses.engine_backward import backward
from contrastive.losses.engine_forward import forward
from contrastive.losses.reductions import PairFn, Reductions, Stats
from contrastive.losses.tiling import Side
from contrastive.parallel.ring import AxisName, ensure_varying, ring_size

Array = jax.Array

# Largest tile edge when the caller does not choose, per backend. On CPU 512 x 512 float32 scores
# (1 MiB) stay in cache and ran fastest (experiments/loss_memory.py); accelerators need large
# tiles so that each loop iteration's matmuls amortise its fixed launch cost (not yet tuned).
DEFAULT_BLOCK_SIZE = {"cpu": 512}
ACCELERATOR_BLOCK_SIZE = 4096

__all__ = ["PairFn", "Reductions", "Side", "Stats", "pairwise_stats", "global_mean", "global_sum",
           "global_logsumexp", "global_batch_size"]


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
    *,
    row_data: Any = None,
    col_data: Any = None,
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
      row_data, col_data: per-example features of x's rows and y's rows (pytrees of (n, ...)
        arrays, this device's shard), passed to the reductions' functions tile by tile; their
        floating-point leaves receive gradients.

    Returns:
      Stats of this device's n rows (row_lse, row_sum) and n columns (col_lse, col_sum), each
      reduced over the whole global batch.
    """
    for name, data in (("row_data", row_data), ("col_data", col_data)):
        for leaf in jax.tree.leaves(data):
            if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != x.shape[0]:
                raise ValueError(f"every {name} leaf needs one row per example ({x.shape[0]}); "
                                 f"got shape {jnp.shape(leaf)}")
    block = choose_block_size(x.shape[0], block_size)
    dtype = stats_dtype(x.dtype)
    scale = jnp.asarray(scale, dtype)
    bias = None if bias is None else jnp.asarray(bias, dtype)
    # Varying over the ring's devices even where the caller broadcast a replicated value (a
    # shared temperature as a per-row leaf), so its cotangent has the type shard_map expects.
    row_data, col_data = (ensure_varying(jax.tree.map(jnp.asarray, d), axis_name)
                          for d in (row_data, col_data))
    return _pairwise_stats(x, y, scale, bias, row_data, col_data, reductions, block, axis_name)


def global_mean(v: Array, axis_name: AxisName = None) -> Array:
    """Mean of a per-row vector over the global batch (all shards when sharded)."""
    total = jnp.sum(v)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    return total / (v.shape[0] * ring_size(axis_name))


def global_sum(v: Array, axis_name: AxisName = None) -> Array:
    """Sum of a per-row vector over the global batch."""
    total = jnp.sum(v)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


def global_logsumexp(v: Array, axis_name: AxisName = None) -> Array:
    """log sum_i exp(v_i) over the global batch, shifted by the global max for stability."""
    top = jax.lax.stop_gradient(jnp.max(v))
    if axis_name is not None:
        top = jax.lax.pmax(top, axis_name)
    top = jnp.where(jnp.isfinite(top), top, 0)
    return top + jnp.log(global_sum(jnp.exp(v - top), axis_name))


def global_batch_size(n: int, axis_name: AxisName = None) -> int:
    """N, the global batch, from this device's n rows."""
    return n * ring_size(axis_name)


# The custom VJP: the forward sweep saves only its inputs and the (N,) statistics.


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _pairwise_stats(x, y, scale, bias, row_data, col_data, reductions, block, axis_name):
    return forward(x, y, scale, bias, row_data, col_data, reductions, block, axis_name)


def _pairwise_stats_fwd(x, y, scale, bias, row_data, col_data, reductions, block, axis_name):
    stats = forward(x, y, scale, bias, row_data, col_data, reductions, block, axis_name)
    return stats, (x, y, scale, bias, row_data, col_data, stats)


def _pairwise_stats_bwd(reductions, block, axis_name, residuals, cotangents):
    return backward(*residuals, cotangents, reductions, block, axis_name)


_pairwise_stats.defvjp(_pairwise_stats_fwd, _pairwise_stats_bwd)
