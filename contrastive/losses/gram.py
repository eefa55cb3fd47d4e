"""GRAM: contrastive alignment of M >= 2 modalities (or views) by the volume they span."""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.parallel.ring import AxisName


def small_det(m: jax.Array) -> jax.Array:
    """det of (..., k, k) matrices by Laplace expansion along the first row: a polynomial of
    the entries, so its gradient is exact even where m is singular (k is M - 1, a handful)."""
    k = m.shape[-1]
    if k == 1:
        return m[..., 0, 0]
    rest = m[..., 1:, :]
    return sum((-1) ** j * m[..., 0, j] * small_det(jnp.delete(rest, j, axis=-1))
               for j in range(k))


def adjugate(m: jax.Array) -> jax.Array:
    """adj(m) = det(m) m^-1 for (..., k, k) matrices, from cofactors (defined when singular)."""
    k = m.shape[-1]
    if k == 1:
        return jnp.ones_like(m)
    minor = lambda i, j: jnp.delete(jnp.delete(m, i, axis=-2), j, axis=-1)
    return jnp.stack([jnp.stack([(-1) ** (i + j) * small_det(minor(j, i)) for j in range(k)],
                                axis=-1) for i in range(k)], axis=-2)


def _squared_volume(sq_norm, p, det, adj):
    """Vol^2 = det Gram(a, m^1..m^K) = |a|^2 det B - p^T adj(B) p (Schur complement), with B the
    Gram matrix of m^1..m^K, p_k = <a, m^k>; shapes broadcast over leading (pair) axes."""
    return sq_norm * det - jnp.einsum("...k,...kl,...l->...", p, adj, p)


@functools.lru_cache(maxsize=None)  # one Reductions per eps: a stable static engine argument
def _reductions(eps: float) -> engine.Reductions:
    def negative_volume(s, row, col):
        """-scale Vol_ij for the tile: s_ij = <a_i, m^1_j> comes from the engine (scale 1);
        <a_i, m^k_j> for k >= 2 are formed here, a (b, b) tile each."""
        anchor, scale, sq_norm = row.data
        others, det, adj = col.data
        more = jnp.einsum("id,jkd->ijk", anchor.astype(s.dtype), others[:, 1:].astype(s.dtype))
        p = jnp.concatenate([s[..., None], more], axis=-1)  # (b, b, K)
        vol2 = _squared_volume(sq_norm[:, None], p, det[None, :], adj[None])
        return -scale[:, None] * jnp.sqrt(jnp.maximum(vol2, 0) + eps)

    return engine.Reductions(row_lse=negative_volume, col_lse=negative_volume)


def gram_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    *,
    eps: float = 1e-6,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """GRAM (Cicchetti et al. 2025, "Gramian Multimodal Representation Learning and
    Alignment", ICLR): sample i's anchor a_i (x_i, e.g. text) and sample j's other K = M - 1
    modalities m^1_j .. m^K_j (y_j) span a parallelotope whose volume is small when all M are
    aligned; it replaces the cosine as the score, in both directions of InfoNCE:

        G_ij = Gram(a_i, m^1_j, .., m^K_j)  (M x M),   Vol_ij = sqrt(det G_ij + eps)
        L = 1/(2N) sum_i [(log sum_j exp(-scale Vol_ij) + scale Vol_ii)        (anchor -> data)
                          + (log sum_j exp(-scale Vol_ji) + scale Vol_ii)]     (data -> anchor)

    With M = 2, Vol = |sin angle(a, m)|: antipodal pairs count as aligned, as any volume does.
    Blockwise: det G_ij = |a_i|^2 det B_j - p_ij^T adj(B_j) p_ij with B_j = Gram(m^1_j..m^K_j)
    and p_ij = (<a_i, m^k_j>)_k, so each tile needs K (b, b) dot-product tiles and sample j's
    det B_j and adjugate (O(N K^2), travelling with its columns around the ring); neither the
    N x N volumes nor any N x N x M x M Gram is held. Memory O(N K d + K block_size^2).

    Args:
      x: (N, d) anchors; y: (N, d) one other modality, or (N, K, d) K others (views 2..V).
        Usually L2-normalised (the volume is not scale-free: |a|^2 enters as is).
      scale: scalar multiplier of the volumes (1 / temperature); receives a gradient.
      eps: > 0 added under the square root: Vol's gradient stays finite where det G = 0.
      block_size, axis_name: as for `clip_loss`.
    """
    others = y[:, None] if jnp.ndim(y) == 2 else y
    if jnp.ndim(others) != 3:
        raise ValueError(f"y must be (N, d) or (N, K, d); got shape {jnp.shape(y)}.")
    engine.check_inputs(x, others[:, 0], scale, None, block_size)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ValueError(f"GRAM's eps must be a positive number; got {eps!r}.")
    x, others = engine.common_dtype(x, others)
    dtype = engine.stats_dtype(x.dtype)
    o32 = others.astype(dtype)
    gram_b = jnp.einsum("nkd,nld->nkl", o32, o32)  # B_j, (N, K, K)
    det, adj = small_det(gram_b), adjugate(gram_b)
    sq_norm = jnp.sum(jnp.square(x.astype(dtype)), axis=-1)
    scale = jnp.asarray(scale, dtype)
    row_data = (x, jnp.broadcast_to(scale, sq_norm.shape), sq_norm)
    stats = engine.pairwise_stats(x, others[:, 0], 1.0, None, _reductions(float(eps)),
                                  block_size, axis_name, row_data=row_data,
                                  col_data=(others, det, adj))
    p = jnp.einsum("nd,nkd->nk", x.astype(dtype), o32)
    positives = -scale * jnp.sqrt(jnp.maximum(_squared_volume(sq_norm, p, det, adj), 0) + eps)
    return 0.5 * (engine.global_mean(stats.row_lse - positives, axis_name)
                  + engine.global_mean(stats.col_lse - positives, axis_name))
