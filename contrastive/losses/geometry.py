"""Alignment and uniformity (Wang & Isola 2020) as losses, uniformity blockwise."""
from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.losses.clip import clip_loss
from contrastive.parallel.ring import AxisName


def _gaussian_potential(s, row, col):
    """-t ||z_i - z_j||^2 = -t (|z_i|^2 + |z_j|^2 - 2 <z_i, z_j>) for i != j, -inf on i = j.
    row.data and col.data hold t |z|^2; s = 2 t <z_i, z_j> (scale 2t)."""
    distinct = row.ids[:, None] != col.ids[None, :]
    return jnp.where(distinct, s - row.data[:, None] - col.data[None, :], -jnp.inf)


_UNIFORMITY = engine.Reductions(row_lse=_gaussian_potential)


def _unit(z):
    return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def alignment_loss(x: jax.Array, y: jax.Array, *, alpha: float = 2.0,
                   axis_name: AxisName = None) -> jax.Array:
    """Alignment of Wang & Isola 2020 ("Understanding Contrastive Representation Learning
    through Alignment and Uniformity on the Hypersphere"): E ||x_i - y_i||^alpha over positive
    pairs of unit embeddings (normalised here). O(N d), no pairwise term."""
    engine.check_inputs(x, y, 1.0)
    x, y = engine.common_dtype(x, y)
    x, y = (_unit(a.astype(engine.stats_dtype(a.dtype))) for a in (x, y))
    squared = jnp.sum((x - y) ** 2, axis=1)
    return engine.global_mean(squared ** (alpha / 2), axis_name)


def uniformity_loss(z: jax.Array, *, t: float = 2.0, block_size: Optional[int] = None,
                    axis_name: AxisName = None) -> jax.Array:
    """Uniformity of Wang & Isola 2020: log of the mean Gaussian potential over distinct pairs
    of unit embeddings (normalised here),

        log 1/(N (N-1)) sum_{i != j} exp(-t ||z_i - z_j||^2)

    lowest when the embeddings spread evenly over the sphere. Blockwise: the engine's row
    log-sum-exps of the potential, then one global log-sum-exp over rows."""
    engine.check_inputs(z, z, 1.0, None, block_size)
    z = _unit(z.astype(engine.stats_dtype(z.dtype)))
    n = engine.global_batch_size(z.shape[0], axis_name)
    if n < 2:
        raise ValueError("uniformity needs at least two embeddings.")
    norms = t * jnp.sum(z * z, axis=1)  # t |z_i|^2 (= t for unit rows, kept exact)
    stats = engine.pairwise_stats(z, z, 2.0 * t, None, _UNIFORMITY, block_size, axis_name,
                                  row_data=norms, col_data=norms)
    return engine.global_logsumexp(stats.row_lse, axis_name) - math.log(n * (n - 1))


def clip_geometry_loss(x: jax.Array, y: jax.Array, scale, *, alignment_weight: float = 1.0,
                       uniformity_weight: float = 1.0, t: float = 2.0,
                       block_size: Optional[int] = None, axis_name: AxisName = None):
    """CLIP's loss plus explicit alignment and uniformity terms, the objective that "It's Not a
    Modality Gap: Characterizing and Addressing the Contrastive Gap" (Fahim et al. 2024) proposes
    to close the gap between the modalities' embeddings:

        clip_loss + alignment_weight * alignment(x, y)
                  + uniformity_weight * (uniformity(x) + uniformity(y)) / 2
    """
    kwargs = dict(block_size=block_size, axis_name=axis_name)
    uniformity = 0.5 * (uniformity_loss(x, t=t, **kwargs) + uniformity_loss(y, t=t, **kwargs))
    return (clip_loss(x, y, scale, **kwargs)
            + alignment_weight * alignment_loss(x, y, axis_name=axis_name)
            + uniformity_weight * uniformity)
