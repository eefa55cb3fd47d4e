"""Continuously weighted contrastive loss: soft targets from a frozen tower's similarities."""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.parallel.ring import AxisName


def _weighted_scores(s, row, col):
    """(w_ij S_ij, w_ij) with w_ij = (1 + <u_i, u_j>) / 2, the frozen embeddings' cosine
    similarity mapped to [0, 1]; formed per tile, so W is never held either."""
    w = 0.5 * (1 + jnp.dot(row.data, col.data.T, preferred_element_type=s.dtype))
    return w * s, w


_REDUCTIONS = engine.Reductions(
    row_lse=True, col_lse=True, row_sum=_weighted_scores, col_sum=_weighted_scores)


def cwcl_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    frozen: jax.Array,
    *,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """CWCL (Srinivasa et al. 2023, "CWCL: Cross-Modal Transfer with Continuously Weighted
    Contrastive Loss"): cross-entropy against soft targets given by intra-modal similarity in a
    frozen, pre-trained modality, instead of CLIP's one-hot diagonal:

        S = scale x y^T,  w_ij = (1 + <u_i, u_j>) / 2  for the unit frozen embeddings u
        loss = 1/(2N) sum_i [ sum_j w_ij (log sum_k exp S_ik - S_ij) / sum_j w_ij
                             + sum_j w_ji (log sum_k exp S_kj - S_ji) / sum_j w_ji ]

    Every sample similar to i in the frozen modality is a (partial) positive of i. Blockwise:
    each tile forms its block of W from u, so neither S nor W is ever materialised.

    Args:
      x, y: (N, d) paired embeddings, usually L2-normalised; y is usually the tower being
        aligned to the frozen one.
      scale: scalar 1 / temperature.
      frozen: (N, d_u) embeddings from the frozen tower (normalised here; no gradient flows).
      block_size, axis_name: as for `clip_loss` (with `axis_name`, this device's rows of frozen).
    """
    engine.check_inputs(x, y, scale, None, block_size)
    if jnp.ndim(frozen) != 2 or jnp.shape(frozen)[0] != jnp.shape(x)[0]:
        raise ValueError(f"frozen must be (N, d_u) with N = {jnp.shape(x)[0]} rows; got shape "
                         f"{jnp.shape(frozen)}.")
    x, y = engine.common_dtype(x, y)
    u = jax.lax.stop_gradient(jnp.asarray(frozen, engine.stats_dtype(x.dtype)))
    u = u / jnp.maximum(jnp.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    stats = engine.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size, axis_name,
                                  row_data=u, col_data=u)
    (row_ws, row_w), (col_ws, col_w) = stats.row_sum, stats.col_sum
    rows = stats.row_lse - row_ws / row_w  # sum_j w_ij (lse_i - S_ij) / sum_j w_ij
    cols = stats.col_lse - col_ws / col_w
    return 0.5 * (engine.global_mean(rows, axis_name) + engine.global_mean(cols, axis_name))
