"""Decoupled contrastive learning on paired embeddings: DCL and its weighted form DCLW."""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.losses.clip import positive_scores
from contrastive.parallel.ring import AxisName


def _negatives(s, row, col):
    """Scores of the pairs i != j (the negatives), -inf on the positive pair."""
    return jnp.where(row.ids[:, None] != col.ids[None, :], s, -jnp.inf)


_REDUCTIONS = engine.Reductions(row_lse=_negatives, col_lse=_negatives)


def dcl_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    *,
    sigma: Optional[float] = None,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """Decoupled contrastive loss (Yeh et al. 2022, "Decoupled Contrastive Learning"): InfoNCE
    with the positive pair removed from the denominator, both directions averaged:

        S = scale x y^T
        loss = 1/(2N) sum_i [ (log sum_{j != i} exp S_ij - w_i S_ii)
                             + (log sum_{j != i} exp S_ji - w_i S_ii) ]

    w_i = 1 gives DCL. With `sigma`, DCLW's von Mises-Fisher weighting of the positives,
    w_i = 2 - N softmax_i(<x_i, y_i> / sigma) (softmax over the batch, as in the paper's code):
    pairs that are already close weigh less. For two views of one image use
    `ntxent_loss(..., decoupled=True)`, whose negatives include the intra-view pairs.

    Args:
      x, y: (N, d) paired embeddings, usually L2-normalised.
      scale: scalar 1 / temperature; receives a gradient.
      sigma: DCLW's weighting temperature (the paper uses 0.5); None for plain DCL.
      block_size, axis_name: as for `clip_loss`.
    """
    engine.check_inputs(x, y, scale, None, block_size)
    x, y = engine.common_dtype(x, y)
    stats = engine.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size, axis_name)
    positives = positive_scores(x, y, scale)
    if sigma is not None:
        cosine = positive_scores(x, y, 1.0 / sigma)  # <x_i, y_i> / sigma
        n = engine.global_batch_size(x.shape[0], axis_name)
        weights = 2 - n * jnp.exp(cosine - engine.global_logsumexp(cosine, axis_name))
        positives = weights * positives
    # With N = 1 there is no negative: log sum over nothing is -inf, and the loss is taken as
    # -w S_11 (no denominator to decouple).
    row_lse, col_lse = (jnp.where(jnp.isfinite(v), v, 0) for v in (stats.row_lse, stats.col_lse))
    return 0.5 * (engine.global_mean(row_lse - positives, axis_name)
                  + engine.global_mean(col_lse - positives, axis_name))
