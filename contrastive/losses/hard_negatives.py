"""Contrastive learning with hard negatives: negatives reweighted by their own similarity."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.losses.clip import positive_scores
from contrastive.parallel.ring import AxisName


@dataclasses.dataclass(frozen=True)
class _TiltedNegatives:
    """For the negatives j != i: ((1 + beta) S_ij, beta S_ij); -inf on the positive pair."""

    beta: float

    def __call__(self, s, row, col):
        negative = row.ids[:, None] != col.ids[None, :]
        tilt = lambda t: jnp.where(negative, t, -jnp.inf)
        return tilt((1 + self.beta) * s), tilt(self.beta * s)


def _log_negative_term(tilted, importance, positives, num_negatives, scale, tau_plus):
    """log N_g of Robinson et al., from the log-sum-exps of the tilted negatives:

        reweighted = M sum_j e^{(1+beta) S_ij} / sum_j e^{beta S_ij}    (M = N - 1 negatives)
        N_g = max((reweighted - tau_plus M e^{S_ii}) / (1 - tau_plus), M e^{-scale})

    e^{-scale} is the smallest e^{S} of unit embeddings, the paper's clamp."""
    log_m = math.log(max(num_negatives, 1))
    log_reweighted = log_m + tilted - importance
    floor = log_m - scale
    if tau_plus == 0:
        return jnp.maximum(log_reweighted, floor)
    log_bias = math.log(tau_plus) + log_m + positives
    gap = log_bias - log_reweighted
    safe_gap = jnp.where(gap < 0, gap, -1.0)  # keeps log1p finite where the branch is unused
    debiased = log_reweighted + jnp.log1p(-jnp.exp(safe_gap)) - math.log1p(-tau_plus)
    return jnp.maximum(jnp.where(gap < 0, debiased, -jnp.inf), floor)


def hard_negative_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    *,
    beta: float = 1.0,
    tau_plus: float = 0.0,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """Hard-negative contrastive loss (HCL; Robinson et al. 2021, "Contrastive Learning with Hard
    Negative Samples"), symmetric over the two directions:

        S = scale x y^T,  negatives of i: j != i, reweighted by q_ij ∝ exp(beta S_ij)
        loss_i = -log e^{S_ii} / (e^{S_ii} + N_g,i)

    with N_g from `_log_negative_term`: beta is the concentration of the importance weights on
    hard (similar) negatives (beta = tau_plus = 0 is InfoNCE, i.e. `clip_loss`, up to the
    clamp), and tau_plus > 0 adds the debiasing of Chuang et al. 2020 ("Debiased
    Contrastive Learning") for the class prior tau_plus. (MoCHi's hard negative mixing synthesises
    new negatives in feature space rather than reweighting the batch's, so it is not here.)

    Args:
      x, y: (N, d) paired embeddings, L2-normalised (the clamp assumes cosine scores).
      scale: scalar 1 / temperature.
      beta: concentration on hard negatives (>= 0).
      tau_plus: class-prior of the debiased estimator, in [0, 1).
      block_size, axis_name: as for `clip_loss`.
    """
    engine.check_inputs(x, y, scale, None, block_size)
    if beta < 0 or not 0 <= tau_plus < 1:
        raise ValueError(f"need beta >= 0 and 0 <= tau_plus < 1; got beta={beta}, "
                         f"tau_plus={tau_plus}.")
    x, y = engine.common_dtype(x, y)
    tilt = _TiltedNegatives(float(beta))
    stats = engine.pairwise_stats(x, y, scale, None, engine.Reductions(row_lse=tilt, col_lse=tilt),
                                  block_size, axis_name)
    positives = positive_scores(x, y, scale)
    num_negatives = engine.global_batch_size(x.shape[0], axis_name) - 1
    if num_negatives == 0:  # N_g = 0 without negatives: loss -log(e^p / e^p) = 0
        return 0.0 * engine.global_mean(positives, axis_name)
    scale = jnp.asarray(scale, positives.dtype)

    def direction(lse_pair):
        log_ng = _log_negative_term(*lse_pair, positives, num_negatives, scale, tau_plus)
        return jnp.logaddexp(positives, log_ng) - positives  # -log e^p / (e^p + N_g)

    return 0.5 * (engine.global_mean(direction(stats.row_lse), axis_name)
                  + engine.global_mean(direction(stats.col_lse), axis_name))
