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
) -> jax.Array:
    """Symmetric InfoNCE of CLIP (Radford et al. 2021, "Learning Transferable Visual Models From
    Natural Language Supervision"), equal to OpenCLIP's `ClipLoss` with `logit_scale=scale`:

        S = scale * x y^T
        loss = 1/(2N) sum_i [(log sum_j exp S_ij - S_ii) + (log sum_j exp S_ji - S_ii)]

    i.e. the mean of the image->text and text->image cross-entropies with the diagonal as labels.
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

    Returns:
      The scalar loss, float32 (float64 for float64 inputs).
    """
    engine.check_inputs(x, y, scale, None, block_size)
    pallas.check_impl(impl, axis_name)
    x, y = engine.common_dtype(x, y)
    if impl == "pallas":
        stats = pallas.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size=block_size)
    else:
        stats = engine.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size, axis_name)
    positives = positive_scores(x, y, scale)
    return 0.5 * (
        engine.global_mean(stats.row_lse - positives, axis_name)
        + engine.global_mean(stats.col_lse - positives, axis_name)
    )


def positive_scores(x: jax.Array, y: jax.Array, scale, bias=None) -> jax.Array:
    """S_ii = scale <x_i, y_i> (+ bias): the paired scores, O(N d), in the statistics dtype."""
    dtype = engine.stats_dtype(x.dtype)
    s = jnp.asarray(scale, dtype) * jnp.sum(x.astype(dtype) * y.astype(dtype), axis=-1)
    return s if bias is None else s + jnp.asarray(bias, dtype)
