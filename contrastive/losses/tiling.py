"""Tiles of the score matrix: splitting rows into blocks, one tile of scores, online log-sum-exp;
and the same per-tile maths in ops that Pallas lowers to Triton and Mosaic, for the fused kernels
(`losses.pallas`), which work on values loaded from refs (except `ref_scores`, which streams the
contraction over d through the refs)."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

Array = jax.Array


class Side(NamedTuple):
    """What a loss's elementwise functions see of a tile's rows (or columns).

    ids: (b,) global int32 indices of the tile's rows (columns), -1 on padding.
    data: the loss's per-example features for those rows (a pytree of (b, ...) arrays, e.g.
      labels or per-example temperatures), or None.
    """

    ids: Array
    data: Any = None


class Tiling(NamedTuple):
    """The n local rows cut into T = ceil(n / b) tiles of b rows, padded at the end."""

    n: int
    block: int
    num_tiles: int

    @classmethod
    def of(cls, n: int, block: int) -> "Tiling":
        return cls(n, block, math.ceil(n / block))

    @property
    def padded(self) -> bool:
        return self.n % self.block != 0

    def split(self, a: Array, mode: str = "constant") -> Array:
        """(n, ...) -> (T, b, ...), padded with zeros (or, mode="edge", copies of the last row)."""
        pad = self.num_tiles * self.block - self.n
        if pad:
            a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), mode=mode)
        return a.reshape((self.num_tiles, self.block) + a.shape[1:])

    def split_data(self, tree):
        """Per-example features -> tiles. Padding repeats the last real row, so that a loss's
        function of them stays finite there (a zero temperature would not)."""
        return jax.tree.map(lambda a: self.split(a, mode="edge"), tree)

    def merge(self, a: Array) -> Array:
        """(T, b, ...) -> (n, ...), padding dropped."""
        return self.trim(a.reshape((-1,) + a.shape[2:]))

    # Accumulators of rows (gradients) are kept flat, (T b, ...): with no padding they already
    # have their result's shape, so XLA can finish them in place (the final scale, the loss's
    # own terms) instead of writing a copy; (T, b, ...) tiles would need a reshape first.
    def rows(self, a: Array, i) -> Array:
        """Tile i, (b, ...), of a flat (T b, ...) accumulator."""
        return jax.lax.dynamic_slice_in_dim(a, i * self.block, self.block)

    def set_rows(self, a: Array, i, tile: Array) -> Array:
        return jax.lax.dynamic_update_slice_in_dim(a, tile, i * self.block, 0)

    def add_rows(self, a: Array, i, tile: Array) -> Array:
        return self.set_rows(a, i, self.rows(a, i) + tile)

    def trim(self, a: Array) -> Array:
        """(T b, ...) -> (n, ...): padding dropped (nothing to do without padding)."""
        return a if a.shape[0] == self.n else a[: self.n]

    def ids(self, offset) -> Array:
        """(T, b) global row indices offset + 0 .. n-1, and -1 on padding rows."""
        local = jnp.arange(self.num_tiles * self.block, dtype=jnp.int32)
        return jnp.where(local < self.n, local + offset, -1).reshape(self.num_tiles, self.block)


# Under a ring each block travels in pieces of whole tiles, at most this many, one ring per
# piece (`parallel.ring.ring_loop`): a device then holds about 4 / RING_CHUNKS of a block in
# visitors and payloads (theirs and the copies in flight) instead of 4 blocks. 16 make that a
# quarter block, below the tiles' own temporaries at N / P = 8192 on CPU; the ring's steps
# multiply, each with proportionally less compute and transfer, and the measured time did not
# change (experiments/ring_memory.py).
RING_CHUNKS = 16


def scores(x_tile, y_tile, scale, bias, dtype):
    """One (b, b) tile of S = scale * x y^T + bias, accumulated and returned in `dtype`."""
    g = jax.lax.dot_general(x_tile, y_tile, (((1,), (1,)), ((), ())), preferred_element_type=dtype)
    s = scale * g
    return s if bias is None else s + bias


def lse_update(m, l, s, valid, axis):
    """Online log-sum-exp: folds tile s (entries where `valid`) into running max m and sum l.

    Keeps l = sum exp(s - m). Entries may be -inf (a loss masking pairs out of a denominator),
    so a row can meet nothing finite for several tiles: m stays -inf and l 0 until it does, and
    the shift below is 0 then, never (-inf) - (-inf).
    """
    if valid is not None:
        s = jnp.where(valid, s, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(s, axis=axis))
    shift = jnp.where(jnp.isfinite(m_new), m_new, 0)
    l_new = l * jnp.exp(m - shift) + jnp.sum(jnp.exp(s - jnp.expand_dims(shift, axis)), axis=axis)
    return m_new, l_new


# The fused kernels' tile maths.
# (((contract a's dim 1), (contract b's dim 1)), no batch dims): a_tile @ b_tile^T.
_NT = (((1,), (1,)), ((), ()))


def ref_scores(a_ref, b_ref, col_start, bk: int, bd: int, scale, bias, dtype, precision) -> Array:
    """`scores` inside a Pallas kernel: the (bq, bk) tile scale * a_block @ b[col_start :
    col_start + bk]^T (+ bias), in `dtype`.

    a_ref is the kernel's (bq, D) row block, b_ref the whole (N, D) other operand. The contraction
    over D runs in chunks of bd columns so that each chunk's operands fit in on-chip memory when
    D is large (d = 1024 in bf16 is 256 KiB for a 128-row block: more than a GPU's shared
    memory); Triton pipelines the chunk loads across the loop (num_stages)."""
    depth = a_ref.shape[1]
    bq = a_ref.shape[0]

    def chunk(k, acc):
        start = aligned(k * bd, bd)
        a = a_ref[:, pl.ds(start, bd)]
        b = b_ref[pl.ds(col_start, bk), pl.ds(start, bd)]
        return acc + jax.lax.dot_general(
            a, b, _NT, precision=precision, preferred_element_type=dtype
        )

    zeros = jnp.zeros((bq, bk), dtype)
    if depth == bd:  # one chunk: no loop
        g = chunk(0, zeros)
    else:
        g = jax.lax.fori_loop(0, depth // bd, chunk, zeros)
    s = scale * g
    return s if bias is None else s + bias


def kernel_pair_nll(s, paired):
    """SigLIP's -log sigmoid(z s) = softplus(-z s), z = +1 where `paired` (i == j), else -1.

    softplus(t) = max(t, 0) + log1p(exp(-|t|)): stable for any |t|, and only exp/log1p/abs/max,
    which every Pallas backend lowers (jax.nn.softplus goes through logaddexp)."""
    t = jnp.where(paired, -s, s)
    return jnp.maximum(t, 0) + jnp.log1p(jnp.exp(-jnp.abs(t)))


def kernel_pair_nll_grad(s, paired):
    """d/ds softplus(-z s) = -z sigmoid(-z s), the sigmoid formed without overflow."""
    t = jnp.where(paired, -s, s)
    e = jnp.exp(-jnp.abs(t))
    sig = jnp.where(t >= 0, 1.0, e) / (1.0 + e)  # sigmoid(t)
    return jnp.where(paired, -sig, sig)


def paired_mask(row_start, col_start, shape):
    """(bq, bk) mask of the diagonal pairs i == j of the global score matrix."""
    rows = row_start + jax.lax.broadcasted_iota(jnp.int32, shape, 0)
    cols = col_start + jax.lax.broadcasted_iota(jnp.int32, shape, 1)
    return rows == cols


def valid_cols(col_start, n, shape):
    """(bq, bk) mask of real (non-padding) columns, global index < n."""
    return col_start + jax.lax.broadcasted_iota(jnp.int32, shape, 1) < n


def precision(dtype):
    """Exact float32 products for float32/float64 inputs (Triton would use TF32 by default);
    16-bit inputs take the tensor cores' native path."""
    return jax.lax.Precision.HIGHEST if jnp.dtype(dtype).itemsize >= 4 else None


def aligned(offset, m: int):
    """A block offset, marked as a multiple of m when traced so that Triton vectorises its loads
    (a Python int needs no hint, and Triton's lowering rejects one on a constant)."""
    return offset if isinstance(offset, int) else pl.multiple_of(offset, m)
