"""AMCL: several projection heads, each pair's similarity over a temperature of its own."""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.losses.clip import positive_scores
from contrastive.parallel.ring import AxisName


def temperature(s, tau_min: float, tau_max: float, sharpness: float):
    """tau(s) = tau_min + (tau_max - tau_min) sigmoid(-sharpness s): the paper's
    sigma(r) = iota / (1 + e^r) + eta with r = sharpness x the pair's cosine."""
    return tau_min + (tau_max - tau_min) * jax.nn.sigmoid(-sharpness * s)


@functools.lru_cache(maxsize=None)  # one Reductions per setting: a stable static argument
def _reductions(tau_min: float, tau_max: float, sharpness: float) -> engine.Reductions:
    def tempered(s, row, col):
        del row, col
        return s / temperature(s, tau_min, tau_max, sharpness)

    return engine.Reductions(row_lse=tempered, col_lse=tempered)


def _check(name, value, low=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ValueError(f"AMCL's {name} must be a number >= {low}; got {value!r}.")


def amcl_loss(
    x: jax.Array,
    y: jax.Array,
    *,
    num_heads: int = 2,
    tau_min: float = 0.05,
    tau_max: float = 0.5,
    sharpness: float = 5.0,
    beta: float = 0.01,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """AMCL (Wang, Koniusz, Gedeon & Zheng 2024, "Adaptive Multi-head Contrastive Learning",
    ECCV) on InfoNCE, both directions: C heads, and in head c every pair (i, j) its own
    temperature from its similarity s^c_ij = <x^c_i, y^c_j> (unit head embeddings):

        tau^c_ij = tau_min + (tau_max - tau_min) sigmoid(-sharpness s^c_ij)
        l^c_i = -s^c_ii / tau^c_ii + log sum_j exp(s^c_ij / tau^c_ij) + beta Omega(tau^c_ii)
        Omega(tau) = d_c / 2 log tau + 1 / tau           (d_c: a head's dimension)
        loss = 1/C sum_c 1/(2N) sum_i [l^c_i (rows) + l^c_i (columns, the same down S^c)]

    Similar pairs get low temperatures (a hard negative is penalised sharply), dissimilar ones
    high; Omega keeps the positives' temperatures from collapsing. Departures from the paper,
    so that the loss stays a pure function of the embeddings: its temperature map r = phi(z_i)
    . phi(z_j) with a learned MLP phi is here phi = sqrt(sharpness) x identity (r = sharpness
    s_ij; no parameters of its own), every negative enters the log-sum-exp (the paper's code
    keeps the top-k), and the heads are averaged, not summed. The heads are the C equal slices
    of the embedding, each renormalised: with a linear projection (CLIP's, `model.embed_dim` =
    C d_c) slice c is an independent linear head; with an MLP head they share its hidden
    layers. The model's temperature is not used. Blockwise: tau is an elementwise function of
    each tile's scores, so the engine reduces s / tau(s) tile by tile; memory O(N d + b^2).

    Args:
      x, y: (N, d) paired embeddings, d divisible by num_heads.
      num_heads: C >= 1.
      tau_min, tau_max: 0 < tau_min < tau_max, the temperature's range.
      sharpness: >= 0, how fast the temperature falls with the similarity (0: constant
        (tau_min + tau_max) / 2).
      beta: >= 0, the weight of Omega.
      block_size, axis_name: as for `clip_loss`.
    """
    engine.check_inputs(x, y, None, None, block_size)
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"AMCL's num_heads must be an int >= 1; got {num_heads!r}.")
    if x.shape[1] % num_heads:
        raise ValueError(f"AMCL's num_heads={num_heads} must divide the embedding dimension "
                         f"{x.shape[1]}.")
    for name, value in (("tau_min", tau_min), ("tau_max", tau_max), ("sharpness", sharpness),
                        ("beta", beta)):
        _check(name, value)
    if not 0 < tau_min < tau_max:
        raise ValueError(f"AMCL needs 0 < tau_min < tau_max; got {tau_min!r}, {tau_max!r}.")
    x, y = engine.common_dtype(x, y)
    dtype = engine.stats_dtype(x.dtype)
    width = x.shape[1] // num_heads
    reductions = _reductions(float(tau_min), float(tau_max), float(sharpness))

    def head_loss(heads):
        """One head's loss from its (n, width) slices of x and y."""
        xc, yc = (h / jnp.maximum(jnp.linalg.norm(h, axis=1, keepdims=True), 1e-12)
                  for h in heads)
        stats = engine.pairwise_stats(xc.astype(x.dtype), yc.astype(x.dtype), 1.0, None,
                                      reductions, block_size, axis_name)
        s = positive_scores(xc, yc, 1.0)
        tau = temperature(s, tau_min, tau_max, sharpness)
        own = -s / tau + beta * (width / 2 * jnp.log(tau) + 1 / tau)
        return 0.5 * (engine.global_mean(stats.row_lse + own, axis_name)
                      + engine.global_mean(stats.col_lse + own, axis_name))

    # (C, n, width) slices, one engine sweep per head in a loop: the program holds one.
    split = lambda a: jnp.swapaxes(a.astype(dtype).reshape(a.shape[0], num_heads, width), 0, 1)
    return jnp.mean(jax.lax.map(head_loss, (split(x), split(y))))
