"""Backward kernel: the gradient of one block of rows of A, recomputing S tile by tile.

For a block of rows i of A and a chunk c of d, the program streams B `grad_cols` rows at a time,
recomputes each tile of S = scale * A B^T + bias, forms

    dS_ij = g_lse_i softmax_j(S)_ij + g_lse'_j softmax_i(S)_ij + (g_nll_i + g_nll'_j) phi'(S_ij)

(unprimed: statistics of A's rows, primed: of B's rows, i.e. the columns; phi = SigLIP's
softplus(-z S), softmax from the saved lse's, so no second reduction) and accumulates

    dA_ic = scale sum_j dS_ij B_jc

in a float32 (grad_rows, out) accumulator on chip (its size is what limits the tiles at large d:
see `Blocks`). dB is the same kernel with A and B (and the two sides' statistics) swapped, since
dB = scale dS^T A: one kernel gridded over row blocks for dA, one over column blocks for dB,
neither writing the other's rows, so no atomics (FlashAttention-2 instead keeps dK/dV on chip and
adds dQ atomically). The price is that both kernels recompute S: four N x N x d matmuls against
the XLA engine's three.

The dA program also returns, per row, sum_j dS_ij (-> d bias) and <A_ic, (dS B)_ic> (-> d scale,
since dL/d scale = sum_ij dS_ij <A_i, B_j>): O(N) outputs instead of a reduction across programs.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from contrastive.losses import tiling as tile
from contrastive.losses.reductions import Reductions
from contrastive.losses.pallas.blocks import Blocks, compiler_params


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Static description of one call: which optional refs exist, in order."""

    terms: Reductions
    has_bias: bool
    with_scalars: bool


def _kernel(*refs, n, blocks: Blocks, layout: _Layout, dtype, precision):
    terms = layout.terms
    refs = list(refs)
    scale = refs.pop(0)[...]
    bias = refs.pop(0)[...] if layout.has_bias else None
    a_ref, b_ref = refs.pop(0), refs.pop(0)
    # This block's row statistics (loaded once) and the columns' (sliced per step).
    row_lse, row_g = (refs.pop(0)[...], refs.pop(0)[...]) if terms.row_lse else (None, None)
    row_gnll = refs.pop(0)[...] if terms.row_sum else None
    col_lse_ref, col_g_ref = (refs.pop(0), refs.pop(0)) if terms.col_lse else (None, None)
    col_gnll_ref = refs.pop(0) if terms.col_sum else None
    grad_ref = refs.pop(0)
    dsum_ref, dscale_ref = (refs.pop(0), refs.pop(0)) if layout.with_scalars else (None, None)

    bq, bk, bo = a_ref.shape[0], blocks.grad_cols, blocks.out
    row_start = pl.program_id(0) * bq
    out_start = tile.aligned(pl.program_id(1) * bo, bo)

    def step(j, carry, last):
        acc, dsum = carry
        col_start = tile.aligned(j * bk, bk)
        cols = pl.ds(col_start, bk)
        s = tile.ref_scores(a_ref, b_ref, col_start, bk, blocks.depth, scale, bias, dtype, precision)
        ds = jnp.zeros_like(s)
        if terms.row_lse:  # d lse_i / d S_ij = softmax_j(S)_ij = exp(S_ij - lse_i)
            ds += row_g[:, None] * jnp.exp(s - row_lse[:, None])
        if terms.col_lse:
            ds += col_g_ref[cols][None, :] * jnp.exp(s - col_lse_ref[cols][None, :])
        if terms.row_sum or terms.col_sum:
            g = 0.0
            if terms.row_sum:
                g = g + row_gnll[:, None]
            if terms.col_sum:
                g = g + col_gnll_ref[cols][None, :]
            ds += g * tile.kernel_pair_nll_grad(s, tile.paired_mask(row_start, col_start, s.shape))
        if last:  # padded columns are in no statistic; `where`, not a product: their exp may be inf
            ds = jnp.where(tile.valid_cols(col_start, n, s.shape), ds, 0)
        # dS enters the matmul in the input dtype (bf16 stays on the tensor-core path) and the
        # product accumulates in float32.
        b_chunk = b_ref[cols, pl.ds(out_start, bo)]
        acc += jax.lax.dot_general(ds.astype(b_chunk.dtype), b_chunk, (((1,), (0,)), ((), ())),
                                   precision=precision, preferred_element_type=dtype)
        if layout.with_scalars:
            dsum += jnp.sum(ds, axis=1)
        return acc, dsum

    carry = (jnp.zeros((bq, bo), dtype), jnp.zeros((bq,), dtype))
    full, rest = divmod(n, bk)
    carry = jax.lax.fori_loop(0, full, functools.partial(step, last=False), carry)
    if rest:
        carry = step(full, carry, last=True)
    acc, dsum = carry
    grad_ref[...] = (scale * acc).astype(grad_ref.dtype)
    if layout.with_scalars:
        a_chunk = a_ref[:, pl.ds(out_start, bo)].astype(dtype)
        dscale_ref[...] = jnp.sum(a_chunk * acc, axis=1)
        dsum_ref[...] = dsum


def row_grads(a, b, scale, bias, row_side, col_side, *, n: int, terms: Reductions,
              with_scalars: bool, blocks: Blocks, dtype, interpret: bool, backend: str):
    """Gradient of the loss with respect to a's rows, (N_pad, D_pad) in a's dtype, and with
    `with_scalars` the (D_pad / out, N_pad) per-row partials of d bias and d scale.

    row_side / col_side: dicts of (N_pad,) vectors for a's rows / b's rows with keys "lse",
    "g_lse" (the saved lse and its cotangent) and "g_nll" (the pair-nll sum's cotangent), as
    the reductions `terms` (lse's of S and sums of SigLIP's pair nll, see `stats`) require. Padded rows come back with meaningless values (the caller drops them)."""
    n_pad, d_pad = a.shape
    bq, bo = blocks.grad_rows, blocks.out
    grid = (n_pad // bq, d_pad // bo)
    scalar = pl.BlockSpec((1, 1), lambda i, c: (0, 0))
    row_block = pl.BlockSpec((bq,), lambda i, c: (i,))
    whole_vector = pl.BlockSpec((n_pad,), lambda i, c: (0,))

    inputs, in_specs = [jnp.reshape(scale, (1, 1)).astype(dtype)], [scalar]
    if bias is not None:
        inputs.append(jnp.reshape(bias, (1, 1)).astype(dtype))
        in_specs.append(scalar)
    inputs += [a, b]
    in_specs += [pl.BlockSpec((bq, d_pad), lambda i, c: (i, 0)),
                 pl.BlockSpec((n_pad, d_pad), lambda i, c: (0, 0))]
    for side, lse, nll, spec in ((row_side, terms.row_lse, terms.row_sum, row_block),
                                 (col_side, terms.col_lse, terms.col_sum, whole_vector)):
        names = (["lse", "g_lse"] if lse else []) + (["g_nll"] if nll else [])
        inputs += [side[k].astype(dtype) for k in names]
        in_specs += [spec] * len(names)

    out_shape = [jax.ShapeDtypeStruct((n_pad, d_pad), a.dtype)]
    out_specs = [pl.BlockSpec((bq, bo), lambda i, c: (i, c))]
    if with_scalars:
        per_row = jax.ShapeDtypeStruct((d_pad // bo, n_pad), dtype)
        out_shape += [per_row, per_row]
        out_specs += [pl.BlockSpec((None, bq), lambda i, c: (c, i))] * 2

    layout = _Layout(terms, bias is not None, with_scalars)
    outs = pl.pallas_call(
        functools.partial(_kernel, n=n, blocks=blocks, layout=layout, dtype=jnp.dtype(dtype),
                          precision=tile.precision(a.dtype)),
        grid=grid,
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        compiler_params=None if interpret else compiler_params(backend, blocks, 2),
        interpret=interpret,
        name="contrastive_row_grads",
    )(*inputs)
    return outs if with_scalars else outs[0]
