"""Multi-positive contrastive losses over one set of embeddings: SupCon, NT-Xent on V views, and
their decoupled (DCL) forms."""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.parallel.ring import AxisName, ring_index


@dataclasses.dataclass(frozen=True)
class _Denominator:
    """Scores of the pairs in anchor i's denominator, -inf elsewhere: every j != i, or with
    `decoupled` only the j of another label (the positives removed, as DCL does)."""

    decoupled: bool

    def __call__(self, s, row, col):
        keep = row.ids[:, None] != col.ids[None, :]
        if self.decoupled:
            keep &= row.data[:, None] != col.data[None, :]
        return jnp.where(keep, s, -jnp.inf)


def _positives(s, row, col):
    """(sum of the scores of i's positives, their count): j != i with i's label."""
    positive = (row.ids[:, None] != col.ids[None, :]) & (row.data[:, None] == col.data[None, :])
    return jnp.where(positive, s, 0), positive.astype(s.dtype)


_REDUCTIONS = {
    decoupled: engine.Reductions(row_lse=_Denominator(decoupled), row_sum=_positives)
    for decoupled in (False, True)
}


def supcon_loss(
    z: jax.Array,
    labels: jax.Array,
    scale,
    *,
    decoupled: bool = False,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """Supervised contrastive loss, L_out of SupCon (Khosla et al. 2020, "Supervised Contrastive
    Learning"), any number of positives per anchor:

        S = scale z z^T,  P(i) = {p != i : labels_p = labels_i},  A(i) = {a != i}
        loss = 1/|I| sum_{i in I} [ log sum_{a in A(i)} exp S_ia - 1/|P(i)| sum_{p in P(i)} S_ip ]

    over the anchors I that have a positive. `decoupled=True` takes the positives out of the
    denominator, A(i) = {a : labels_a != labels_i}: the decoupled loss of DCL (Yeh et al. 2022,
    "Decoupled Contrastive Learning"). Blockwise (`engine`): memory O(N d + block_size^2).

    Args:
      z: (N, d) embeddings, usually L2-normalised.
      labels: (N,) integer labels; rows with equal labels are positives of each other.
      scale: scalar 1 / temperature; receives a gradient.
      decoupled: leave the positives out of the denominators (DCL).
      block_size, axis_name: as for `clip_loss` (with `axis_name`, z and labels are this
        device's rows of the global batch).
    """
    engine.check_inputs(z, z, scale, None, block_size)
    labels = jnp.asarray(labels)
    if labels.shape != z.shape[:1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be ({z.shape[0]},) integers, one per row of z; got "
                         f"shape {labels.shape} and dtype {labels.dtype}.")
    stats = engine.pairwise_stats(z, z, scale, None, _REDUCTIONS[decoupled], block_size,
                                  axis_name, row_data=labels, col_data=labels)
    positive_sum, positive_count = stats.row_sum
    has_positive = positive_count > 0
    # Decoupled, an anchor whose batch holds only its own label has no denominator: log of an
    # empty sum is -inf, taken as 0 (as `dcl_loss` does for N = 1).
    log_denominator = jnp.where(jnp.isfinite(stats.row_lse), stats.row_lse, 0)
    per_anchor = log_denominator - positive_sum / jnp.maximum(positive_count, 1)
    anchors = engine.global_sum(has_positive.astype(per_anchor.dtype), axis_name)
    total = engine.global_sum(jnp.where(has_positive, per_anchor, 0), axis_name)
    return total / jnp.maximum(anchors, 1)


def ntxent_loss(
    views: jax.Array,
    scale,
    *,
    decoupled: bool = False,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """NT-Xent of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
    Visual Representations") on V >= 2 views of N samples, as in the multi-view setting of
    "A Principled Framework for Multi-View Contrastive Learning" (Koromilas et al. 2024):

        z = the V N view embeddings,  S = scale z z^T,  self-similarity excluded
        loss = mean over anchors a, over the V - 1 other views p of a's sample, of
               log sum_{k != a} exp S_ak - S_ap

    For V = 2 this is exactly SimCLR's loss: each view's positive is the other view, and its
    2N - 2 negatives are both views of the other samples. It is `supcon_loss` with the sample
    index as label; `decoupled=True` gives DCL's decoupled NT-Xent (Yeh et al. 2022).

    Args:
      views: (V, N, d) embeddings; views[v, i] is view v of sample i.
      scale: scalar 1 / temperature.
      block_size, axis_name: as for `clip_loss` (with `axis_name`, each device holds all V
        views of its N / P samples).
    """
    if jnp.ndim(views) != 3 or jnp.shape(views)[0] < 2:
        raise ValueError(f"views must be (V, N, d) with V >= 2 views; got shape {jnp.shape(views)}.")
    num_views, n, d = views.shape
    sample = ring_index(axis_name) * n + jnp.arange(n, dtype=jnp.int32)  # global sample ids
    labels = jnp.tile(sample, num_views)
    return supcon_loss(views.reshape(num_views * n, d), labels, scale, decoupled=decoupled,
                       block_size=block_size, axis_name=axis_name)
