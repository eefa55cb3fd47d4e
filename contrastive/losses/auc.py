"""A retrieval loss that optimises AUC: every positive ranked above every negative."""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.losses.clip import positive_scores
from contrastive.parallel.ring import AxisName

SURROGATES = ("logistic", "squared_hinge")


@dataclasses.dataclass(frozen=True)
class _RankingLoss:
    """l(S_pos - S_ij) for the negatives j != i of each anchor, 0 on the positive pair.
    `rows`: anchors are rows (positive S_ii in row.data), else columns (col.data)."""

    rows: bool
    surrogate: str
    margin: float

    def __call__(self, s, row, col):
        positive = row.data[:, None] if self.rows else col.data[None, :]
        gap = positive - s
        if self.surrogate == "logistic":
            terms = jax.nn.softplus(self.margin - gap)  # log(1 + e^{-(gap - margin)})
        else:
            terms = jnp.square(jnp.maximum(self.margin - gap, 0))
        return jnp.where(row.ids[:, None] != col.ids[None, :], terms, 0)


def auc_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    *,
    surrogate: str = "logistic",
    margin: float = 0.0,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """Pairwise AUC surrogate for retrieval, after "Optimizing What Matters: AUC-Driven Learning
    for Robust Neural Retrieval": each query's AUC is the fraction of negatives ranked below its
    positive, 1/(N-1) sum_{j != i} [S_ii > S_ij]; the step is replaced by a smooth, convex
    surrogate l of the score gap and the loss averages both retrieval directions:

        S = scale x y^T
        loss = 1/(2N(N-1)) sum_i sum_{j != i} [ l(S_ii - S_ij) + l(S_ii - S_ji) ]
        l(g) = log(1 + exp(margin - g))  ("logistic")   or   max(margin - g, 0)^2  ("squared_hinge")

    Unlike InfoNCE, every negative counts equally however far below the positive it ranks (up to
    the surrogate's tail), which is what AUC measures. Blockwise: the positives S_ii travel with
    their rows and columns as per-example features.

    Args:
      x, y: (N, d) paired embeddings (queries and documents), usually L2-normalised.
      scale: scalar multiplier of the scores.
      surrogate: "logistic" or "squared_hinge".
      margin: gap (in scaled score units) below which a pair is penalised.
      block_size, axis_name: as for `clip_loss`.
    """
    engine.check_inputs(x, y, scale, None, block_size)
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}; got {surrogate!r}.")
    x, y = engine.common_dtype(x, y)
    positives = positive_scores(x, y, scale)
    reductions = engine.Reductions(row_sum=_RankingLoss(True, surrogate, float(margin)),
                                   col_sum=_RankingLoss(False, surrogate, float(margin)))
    stats = engine.pairwise_stats(x, y, scale, None, reductions, block_size, axis_name,
                                  row_data=positives, col_data=positives)
    num_negatives = max(engine.global_batch_size(x.shape[0], axis_name) - 1, 1)
    return 0.5 * engine.global_mean(stats.row_sum + stats.col_sum, axis_name) / num_negatives
