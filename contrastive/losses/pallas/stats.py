"""The fused kernels behind one differentiable function: pairwise_stats (a jax.custom_vjp)."""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses.pallas import blocks as blocks_lib
from contrastive.losses.pallas.backward import row_grads
from contrastive.losses.pallas.blocks import Blocks
from contrastive.losses.pallas.forward import row_stats
from contrastive.losses.reductions import Reductions, Stats, pair_nll

Array = jax.Array


def check_reductions(reductions: Reductions) -> Reductions:
    """`reductions` if the kernels compute them: log-sum-exps of S itself (True) and sums of
    SigLIP's `pair_nll`; a ValueError otherwise (other losses run on the XLA engine)."""
    lse_ok = all(getattr(reductions, f) in (False, True) for f in ("row_lse", "col_lse"))
    sum_ok = all(getattr(reductions, f) in (None, pair_nll) for f in ("row_sum", "col_sum"))
    if not (lse_ok and sum_ok):
        raise ValueError("the fused kernels compute log-sum-exps of S (row_lse/col_lse=True) and "
                         f"sums of reductions.pair_nll only; got {reductions}. Use impl='xla'.")
    return reductions


def _transposed(r: Reductions) -> Reductions:
    """The same statistics seen from S^T = scale * B A^T + bias (both kinds are symmetric)."""
    return Reductions(r.col_lse, r.row_lse, r.col_sum, r.row_sum)


def pairwise_stats(
    x: Array,
    y: Array,
    scale,
    bias,
    reductions: Reductions,
    *,
    block_size: Optional[int] = None,
    blocks: Optional[Blocks] = None,
    interpret: Optional[bool] = None,
    backend: Optional[str] = None,
) -> Stats:
    """The statistics `reductions` asks of S = scale * x y^T (+ bias), from the fused kernels:

        row_lse[i] = log sum_j exp S_ij        col_lse[j] = log sum_i exp S_ij
        row_sum[i] = sum_j softplus(-z_ij S_ij) col_sum[j] = sum_i softplus(-z_ij S_ij)

    (z_ij = +1 for i == j, else -1: SigLIP's pair loss, Zhai et al. 2023), differentiable in x,
    y, scale and bias. Memory O(N d); S is never stored, not even one tile in device memory.

    Args:
      x, y: (N, d) embeddings of one float dtype.
      scale, bias: scalars; bias may be None (no bias).
      reductions: which statistics to compute (see `check_reductions`).
      block_size: every tile edge (a power of two >= 16), else the backend's defaults.
      blocks: every block size and launch knob (see `Blocks`); overrides block_size.
      interpret: run the kernels in Pallas' interpreter; None -> only on CPU, where there is no
        compiled Pallas backend (slow: for tests).
      backend: the platform the kernels are built for ("gpu": Triton, "tpu": Mosaic, "cpu");
        None -> jax.default_backend(). Another platform's serves lowering ahead of time.
    """
    if jnp.shape(x) != jnp.shape(y) or jnp.ndim(x) != 2 or x.dtype != y.dtype:
        raise ValueError(f"x and y must be (N, d) arrays of one shape and dtype; got "
                         f"{x.shape} {x.dtype} and {y.shape} {y.dtype}.")
    n, d = x.shape
    backend = backend or jax.default_backend()
    fitted = blocks_lib.choose(n, d, block_size, blocks, backend)
    if interpret is None:
        interpret = backend == "cpu"
    dtype = jnp.promote_types(x.dtype, jnp.float32)  # statistics dtype, as in the XLA engine
    scale = jnp.asarray(scale, dtype)
    bias = None if bias is None else jnp.asarray(bias, dtype)
    return _stats(x, y, scale, bias, check_reductions(reductions), fitted, interpret, backend)


def _forward(x, y, scale, bias, terms: Reductions, blocks: Blocks, interpret: bool, backend: str
             ) -> Stats:
    n = x.shape[0]
    a, b = blocks_lib.pad(x, blocks), blocks_lib.pad(y, blocks)
    kwargs = dict(n=n, blocks=blocks, dtype=scale.dtype, interpret=interpret, backend=backend)
    none = (None, None)
    rows = none
    if terms.row_lse or terms.row_sum:
        rows = row_stats(a, b, scale, bias, lse=terms.row_lse, nll=bool(terms.row_sum), **kwargs)
    cols = none
    if terms.col_lse or terms.col_sum:  # the same kernel on S^T (see forward.py)
        cols = row_stats(b, a, scale, bias, lse=terms.col_lse, nll=bool(terms.col_sum), **kwargs)
    real = lambda v: None if v is None else v[:n]
    return Stats(real(rows[0]), real(cols[0]), real(rows[1]), real(cols[1]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def _stats(x, y, scale, bias, terms, blocks, interpret, backend):
    return _forward(x, y, scale, bias, terms, blocks, interpret, backend)


def _stats_fwd(x, y, scale, bias, terms, blocks, interpret, backend):
    stats = _forward(x, y, scale, bias, terms, blocks, interpret, backend)
    # Residuals are the unpadded inputs (padding again is one O(N d) copy, and only when N or d
    # is not a multiple of the blocks) and the O(N) statistics.
    return stats, (x, y, scale, bias, stats)


def _stats_bwd(terms, blocks, interpret, backend, residuals, cotangents):
    x, y, scale, bias, stats = residuals
    n, d = x.shape
    n_pad = blocks.padded_n(n)
    a, b = blocks_lib.pad(x, blocks), blocks_lib.pad(y, blocks)

    def vec(v):  # padded with zeros: padded entries are masked or dropped in the kernels
        return None if v is None else blocks_lib.pad_rows(v.astype(scale.dtype), n_pad)

    rows = {"lse": vec(stats.row_lse), "g_lse": vec(cotangents.row_lse),
            "g_nll": vec(cotangents.row_sum)}
    cols = {"lse": vec(stats.col_lse), "g_lse": vec(cotangents.col_lse),
            "g_nll": vec(cotangents.col_sum)}
    kwargs = dict(n=n, blocks=blocks, dtype=scale.dtype, interpret=interpret, backend=backend)
    dx, dbias_rows, dscale_rows = row_grads(a, b, scale, bias, rows, cols, terms=terms,
                                            with_scalars=True, **kwargs)
    dy = row_grads(b, a, scale, bias, cols, rows, terms=_transposed(terms), with_scalars=False,
                   **kwargs)
    # Padded rows carry meaningless partials (their exp's are unmasked): drop them before summing.
    dscale = jnp.sum(dscale_rows[:, :n])
    dbias = None if bias is None else jnp.sum(dbias_rows[0, :n])
    return dx[:n, :d], dy[:n, :d], dscale, dbias


_stats.defvjp(_stats_fwd, _stats_bwd)
