"""The Z-loss: a softplus of the positive's z-normalised score, from row sums of s and s^2."""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.losses.clip import positive_scores
from contrastive.parallel.ring import AxisName


def _row_moments(s, row, col):
    """(s_ij - c_i, (s_ij - c_i)^2) with c_i = row i's positive score (row.data)."""
    del col
    d = s - row.data[:, None].astype(s.dtype)
    return d, d * d


def _col_moments(s, row, col):
    """The same for columns: shifted by column j's positive score."""
    del row
    d = s - col.data[None, :].astype(s.dtype)
    return d, d * d


_REDUCTIONS = engine.Reductions(row_sum=_row_moments, col_sum=_col_moments)


def _z_of_positive(positives, shift, sums, n, floor):
    """(s_pos - mean) / sqrt(var + floor) of one side from its shifted first and second sums."""
    first, second = sums
    mean = first / n  # mean of s - c
    var = jnp.maximum(second / n - mean * mean, 0)
    return (positives - shift - mean) / jnp.sqrt(var + floor)


def z_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    *,
    a: float = 1.0,
    b: float = 4.0,
    eps: float = 1e-6,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """The Z-loss (de Brébisson & Vincent 2016, "The Z-loss: a shift and scale invariant
    classification loss belonging to the Spherical Family"), symmetric like CLIP: each row of
    S = scale x y^T is a classification of x_i among the N captions, its positive the diagonal.

        mu_i = 1/N sum_j S_ij,   sigma_i^2 = 1/N sum_j S_ij^2 - mu_i^2
        z_i = (S_ii - mu_i) / sqrt(sigma_i^2 + eps scale^2)
        L_Z(z) = softplus(a (b - z)) / a
        loss = 1/(2N) sum_i [L_Z(z_i^rows) + L_Z(z_i^cols)]    (columns: the same down S's columns)

    z is invariant to adding a constant to a row and to scaling it, so the loss ignores `scale`
    (its gradient is 0; eps is relative to scale^2 so as to keep that exact). a sets the sharpness and b the
    target z (the paper tunes both; the defaults here are untuned). A "spherical" loss: it needs
    only each row's sums of S and S^2 and the positive, so the engine reduces
    (S_ij - c_i, (S_ij - c_i)^2) tile by tile with c_i = S_ii held fixed (the moments do not
    depend on the shift; it only keeps sum s^2 - (sum s)^2 / N from cancelling in float32).
    Memory O(N d + block_size^2).

    Args:
      x, y: (N, d) paired embeddings, usually L2-normalised.
      scale: scalar multiplier of the scores (kept for the trainer's interface).
      a: > 0, the softplus sharpness; b: the z the positive is pushed beyond.
      eps: > 0, added to each row's variance of x_i . y_j (eps scale^2 to that of S), so that
        N = 1 (variance 0) stays finite.
      block_size, axis_name: as for `clip_loss`.
    """
    engine.check_inputs(x, y, scale, None, block_size)
    if isinstance(a, bool) or not isinstance(a, (int, float)) or a <= 0:
        raise ValueError(f"the Z-loss's a must be a positive number; got {a!r}.")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ValueError(f"the Z-loss's eps must be a positive number; got {eps!r}.")
    x, y = engine.common_dtype(x, y)
    positives = positive_scores(x, y, scale)
    shift = jax.lax.stop_gradient(positives)
    stats = engine.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size, axis_name,
                                  row_data=shift, col_data=shift)
    n = engine.global_batch_size(x.shape[0], axis_name)
    floor = eps * jnp.square(jnp.asarray(scale, positives.dtype))
    loss = lambda z: jax.nn.softplus(a * (b - z)) / a
    rows = loss(_z_of_positive(positives, shift, stats.row_sum, n, floor))
    cols = loss(_z_of_positive(positives, shift, stats.col_sum, n, floor))
    return 0.5 * (engine.global_mean(rows, axis_name) + engine.global_mean(cols, axis_name))
