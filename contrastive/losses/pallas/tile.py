"""The per-tile math both kernels share, written in ops that Pallas lowers to Triton and Mosaic.

A tile is a (bq, bk) block of S = scale * X Y^T + bias: rows are a block of the kernel's own
operand `a`, columns a block of the other operand `b`. Everything here works on values already
loaded from refs, except `scores`, which streams the contraction over d through the refs.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

Array = jax.Array

# (((contract a's dim 1), (contract b's dim 1)), no batch dims): a_tile @ b_tile^T.
_NT = (((1,), (1,)), ((), ()))


def scores(a_ref, b_ref, col_start, bk: int, bd: int, scale, bias, dtype, precision) -> Array:
    """The (bq, bk) tile scale * a_block @ b[col_start : col_start + bk]^T (+ bias), in `dtype`.

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


def lse_update(m, l, s):
    """Online log-sum-exp over the tile's columns (Milakov & Gimelshein 2018, "Online normalizer
    calculation for softmax"): folds s into the running row max m and l = sum_j exp(s_j - m).

    Masked entries are -inf in s. Every row meets a real column in the first tile (padding sits
    only in the last), so m is finite from then on and exp(m - m_new) never sees inf - inf."""
    m_new = jnp.maximum(m, jnp.max(s, axis=1))
    l_new = l * jnp.exp(m - m_new) + jnp.sum(jnp.exp(s - m_new[:, None]), axis=1)
    return m_new, l_new


def pair_nll(s, paired):
    """SigLIP's -log sigmoid(z s) = softplus(-z s), z = +1 where `paired` (i == j), else -1.

    softplus(t) = max(t, 0) + log1p(exp(-|t|)): stable for any |t|, and only exp/log1p/abs/max,
    which every Pallas backend lowers (jax.nn.softplus goes through logaddexp)."""
    t = jnp.where(paired, -s, s)
    return jnp.maximum(t, 0) + jnp.log1p(jnp.exp(-jnp.abs(t)))


def pair_nll_grad(s, paired):
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
