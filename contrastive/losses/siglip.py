"""The SigLIP loss: independent binary classification of every pair."""
from __future__ import annotations

from typing import Optional

import jax

from contrastive.losses import engine, pallas, reductions
from contrastive.losses.clip import check_label_smoothing, positive_scores, score_sums
from contrastive.parallel.ring import AxisName


# -1/N sum_ij log sigmoid(z_ij S_ij) = mean over rows i of row_sum_i.
_REDUCTIONS = engine.Reductions(row_sum=reductions.pair_nll)


def siglip_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    bias,
    *,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
    impl: str = "xla",
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Sigmoid loss of SigLIP (Zhai et al. 2023, "Sigmoid Loss for Language Image
    Pre-Training"), equal to OpenCLIP's `SigLipLoss`:

        S = scale * x y^T + bias
        loss = -1/N sum_ij log sigmoid(z_ij S_ij),   z_ii = +1, z_ij = -1 (i != j)

    With label_smoothing = eps each pair's binary target t_ij (1 on the diagonal, else 0)
    becomes (1 - eps) t_ij + eps / 2, the two-class form of smoothing (Szegedy et al. 2016;
    optax.smooth_labels): BCE(s, t) = softplus(s) - t s, so the loss gains
    1/N sum_i [eps S_ii - eps/2 sum_j S_ij], O(N d) terms (`clip.score_sums`) beside the
    engine's one reduction.

    Computed blockwise (see `engine`): memory O(N d + block_size^2), never O(N^2).

    Args:
      x, y: (N, d) paired embeddings, usually L2-normalised.
      scale: scalar multiplier (SigLIP initialises log scale to log 10); receives a gradient.
      bias: scalar bias (SigLIP initialises it to -10); receives a gradient.
      block_size: tile edge; None chooses one.
      axis_name: inside `shard_map`, the mesh axis (or axes) the batch is split over (see
        `clip_loss`).
      impl: "xla" (the blockwise engine, any backend) or "pallas" (fused kernels, see
        `losses.pallas`: Triton on GPU, Mosaic on TPU, interpreted on CPU; no axis_name yet).
      label_smoothing: eps in [0, 1); the targets become 1 - eps/2 (pairs), eps/2 (others).

    Returns:
      The scalar loss, float32 (float64 for float64 inputs).
    """
    engine.check_inputs(x, y, scale, bias, block_size)
    if bias is None:
        raise ValueError("siglip_loss needs a scalar bias (SigLIP initialises it to -10).")
    check_label_smoothing(label_smoothing)
    pallas.check_impl(impl, axis_name)
    x, y = engine.common_dtype(x, y)
    if impl == "pallas":
        stats = pallas.pairwise_stats(x, y, scale, bias, _REDUCTIONS, block_size=block_size)
    else:
        stats = engine.pairwise_stats(x, y, scale, bias, _REDUCTIONS, block_size, axis_name)
    if not label_smoothing:
        return engine.global_mean(stats.row_sum, axis_name)
    eps = label_smoothing
    rows, _ = score_sums(x, y, scale, bias, axis_name)
    smoothing = eps * positive_scores(x, y, scale, bias) - eps / 2 * rows
    return engine.global_mean(stats.row_sum + smoothing, axis_name)
