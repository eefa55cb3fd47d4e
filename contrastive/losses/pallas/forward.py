"""Forward kernel: the row statistics of S = scale * A B^T + bias, one block of rows per program.

Each program owns `rows` rows of A and streams B through on-chip memory `cols` rows at a time
(FlashAttention-2's loop order: Dao 2023, "FlashAttention-2: Faster Attention with Better
Parallelism and Work Partitioning"), keeping per row

    lse_i = log sum_j exp S_ij          (online: running max m_i and l_i = sum_j exp(S_ij - m_i))
    nll_i = sum_j softplus(-z_ij S_ij)  (SigLIP; z_ij = +1 for i == j, -1 otherwise)

in float32 (float64 for float64 inputs) registers; only these (N,) vectors reach memory.

Column statistics are this same kernel with the roles swapped, S^T = scale * B A^T + bias, a
second pass. The alternative, per-row-block partial column (max, sum) pairs reduced afterwards,
needs (N / rows) x N floats: 64 GiB at N = 2^20 with 128-row blocks, which rules out the
million-row batch. The second pass costs one more N x N x d matmul: a CLIP step runs six (two
here, four in backward.py) against the XLA engine's four.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from contrastive.losses import tiling as tile
from contrastive.losses.pallas.blocks import Blocks, compiler_params


def _kernel(*refs, n, blocks: Blocks, has_bias, lse, nll, dtype, precision):
    refs = list(refs)
    scale = refs.pop(0)[...]  # (1, 1): broadcasts against the tile
    bias = refs.pop(0)[...] if has_bias else None
    a_ref, b_ref = refs.pop(0), refs.pop(0)
    lse_ref = refs.pop(0) if lse else None
    nll_ref = refs.pop(0) if nll else None
    bq, bk = a_ref.shape[0], blocks.cols
    row_start = pl.program_id(0) * bq

    def step(j, carry, last):
        m, l, total = carry
        col_start = tile.aligned(j * bk, bk)
        s = tile.ref_scores(a_ref, b_ref, col_start, bk, blocks.depth, scale, bias, dtype, precision)
        # Only the last column block holds padding; the others skip the mask.
        valid = tile.valid_cols(col_start, n, s.shape) if last else None
        if lse:
            m, l = tile.lse_update(m, l, s, valid, axis=1)
        if nll:
            phi = tile.kernel_pair_nll(s, tile.paired_mask(row_start, col_start, s.shape))
            total = total + jnp.sum(phi if valid is None else jnp.where(valid, phi, 0), axis=1)
        return m, l, total

    carry = (jnp.full((bq,), -jnp.inf, dtype), jnp.zeros((bq,), dtype), jnp.zeros((bq,), dtype))
    full, rest = divmod(n, bk)  # column blocks wholly real, and the real columns after them
    carry = jax.lax.fori_loop(0, full, functools.partial(step, last=False), carry)
    if rest:
        carry = step(full, carry, last=True)
    m, l, total = carry
    if lse:
        lse_ref[...] = m + jnp.log(l)
    if nll:
        nll_ref[...] = total


def row_stats(a, b, scale, bias, *, n: int, lse: bool, nll: bool, blocks: Blocks, dtype,
              interpret: bool, backend: str):
    """(lse, nll) of the rows of S = scale * a b^T + bias over its n real columns, each (N_pad,)
    in `dtype` or None when not asked for.

    a, b: (N_pad, D_pad) zero-padded operands (see `blocks.pad`); scale, bias: scalars (bias may
    be None). Rows beyond n come back too (the caller drops them)."""
    n_pad, d_pad = a.shape
    bq = blocks.rows
    scalar = pl.BlockSpec((1, 1), lambda i: (0, 0))
    inputs = [jnp.reshape(scale, (1, 1)).astype(dtype)]
    in_specs = [scalar]
    if bias is not None:
        inputs.append(jnp.reshape(bias, (1, 1)).astype(dtype))
        in_specs.append(scalar)
    inputs += [a, b]
    in_specs += [
        pl.BlockSpec((bq, d_pad), lambda i: (i, 0)),  # this program's rows
        pl.BlockSpec((n_pad, d_pad), lambda i: (0, 0)),  # all columns, streamed by the kernel
    ]
    vector = jax.ShapeDtypeStruct((n_pad,), dtype)
    wanted = [lse, nll]
    outs = pl.pallas_call(
        functools.partial(_kernel, n=n, blocks=blocks, has_bias=bias is not None, lse=lse,
                          nll=nll, dtype=jnp.dtype(dtype), precision=tile.precision(a.dtype)),
        grid=(n_pad // bq,),
        in_specs=in_specs,
        out_specs=[pl.BlockSpec((bq,), lambda i: (i,)) for w in wanted if w],
        out_shape=[vector for w in wanted if w],
        compiler_params=None if interpret else compiler_params(backend, blocks, 1),
        interpret=interpret,
        name="contrastive_row_stats",
    )(*inputs)
    outs = iter(outs)
    return tuple(next(outs) if w else None for w in wanted)

