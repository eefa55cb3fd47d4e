"""The CLIP loss: symmetric InfoNCE over a batch of paired embeddings."""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine, pallas
from contrastive.parallel.ring import AxisName

_REDUCTIONS = engine.Reductions(row_lse=True, col_lse=True)


def clip_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    *,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
    impl: str = "xla",
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Symmetric InfoNCE of CLIP (Radford et al. 2021, "Learning Transferable Visual Models From
    Natural Language Supervision"), equal to OpenCLIP's `ClipLoss` with `logit_scale=scale`:

        S = scale * x y^T
        loss = 1/(2N) sum_i [(log sum_j exp S_ij - S_ii) + (log sum_j exp S_ji - S_ii)]

    i.e. the mean of the image->text and text->image cross-entropies with the diagonal as labels.
    With label_smoothing = eps the targets are (1 - eps) onehot + eps / N, as in PyTorch's
    `CrossEntropyLoss(label_smoothing=eps)` and the "Improved baselines for vision-language
    pre-training" recipe (Fini et al. 2023): the row term becomes
    log sum_j exp S_ij - (1 - eps) S_ii - eps/N sum_j S_ij, and sum_j S_ij = scale <x_i, sum_j y_j>
    needs only the column sum of y (O(N d), no extra pass over S; see `score_sums`).
    Computed blockwise (see `engine`): memory O(N d + block_size^2), never O(N^2).

    Args:
      x, y: (N, d) paired embeddings (row i of x matches row i of y), usually L2-normalised.
      scale: scalar multiplier (exp of a learnable log-temperature); receives a gradient.
      block_size: tile edge; None chooses one.
      axis_name: inside `shard_map`, the mesh axis (or axes) the batch is split over; x and y
        are then this device's rows and the loss is that of the global batch (a ring, see
        `engine`). `parallel.sharded_loss` wraps this for jitted code.
      impl: "xla" (the blockwise engine, any backend) or "pallas" (fused kernels, see
        `losses.pallas`: Triton on GPU, Mosaic on TPU, interpreted on CPU; no axis_name yet).
      label_smoothing: eps in [0, 1), the target mass spread uniformly over the N candidates.

    Returns:
      The scalar loss, float32 (float64 for float64 inputs).
    """
    engine.check_inputs(x, y, scale, None, block_size)
    check_label_smoothing(label_smoothing)
    pallas.check_impl(impl, axis_name)
    x, y = engine.common_dtype(x, y)
    if impl == "pallas":
        stats = pallas.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size=block_size)
    else:
        stats = engine.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size, axis_name)
    positives = positive_scores(x, y, scale)
    if not label_smoothing:
        return 0.5 * (
            engine.global_mean(stats.row_lse - positives, axis_name)
            + engine.global_mean(stats.col_lse - positives, axis_name)
        )
    eps, n = label_smoothing, engine.global_batch_size(x.shape[0], axis_name)
    rows, cols = score_sums(x, y, scale, None, axis_name)
    row_targets = (1 - eps) * positives + eps / n * rows
    col_targets = (1 - eps) * positives + eps / n * cols
    return 0.5 * (
        engine.global_mean(stats.row_lse - row_targets, axis_name)
        + engine.global_mean(stats.col_lse - col_targets, axis_name)
    )


def check_label_smoothing(eps) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < 1:
        raise ValueError(f"label_smoothing must be a number in [0, 1); got {eps!r}.")


def score_sums(x: jax.Array, y: jax.Array, scale, bias=None, axis_name: AxisName = None):
    """(sum_j S_ij over the global batch for each local row i, sum_i S_ij for each local
    column j), S = scale x y^T (+ bias), in O(N d): sum_j S_ij = scale <x_i, sum_j y_j> (+ N
    bias). Under a ring the column sums of x and y are summed over the batch axes."""
    dtype = engine.stats_dtype(x.dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    x_total, y_total = jnp.sum(x, axis=0), jnp.sum(y, axis=0)
    if axis_name is not None:
        x_total, y_total = jax.lax.psum((x_total, y_total), axis_name)
    scale = jnp.asarray(scale, dtype)
    rows, cols = scale * (x @ y_total), scale * (y @ x_total)
    if bias is not None:
        n = engine.global_batch_size(x.shape[0], axis_name)
        rows, cols = rows + n * jnp.asarray(bias, dtype), cols + n * jnp.asarray(bias, dtype)
    return rows, cols


def positive_scores(x: jax.Array, y: jax.Array, scale, bias=None) -> jax.Array:
    """S_ii = scale <x_i, y_i> (+ bias): the paired scores, O(N d), in the statistics dtype."""
    dtype = engine.stats_dtype(x.dtype)
    s = jnp.asarray(scale, dtype) * jnp.sum(x.astype(dtype) * y.astype(dtype), axis=-1)
    return s if bias is None else s + jnp.asarray(bias, dtype)
