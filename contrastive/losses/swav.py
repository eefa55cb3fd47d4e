"""SwAV: swapped prediction of Sinkhorn-Knopp cluster codes (Caron et al. 2020, "Unsupervised
Learning of Visual Features by Contrasting Cluster Assignments").

The loss reads each view's scores against K learnable prototypes, p = z C^T (N, K), with z and
the prototypes c_k unit rows (`models.Prototypes`). It is a function of N x K arrays only, never
of an N x N score matrix, so it needs no blockwise engine: under `axis_name` each device keeps
its own rows and only the Sinkhorn's (K,) column sums and a few scalars cross devices (psum).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.parallel.ring import AxisName, ring_size

Array = jax.Array


def _psum(v, axis_name: AxisName):
    return v if axis_name is None else jax.lax.psum(v, axis_name)


def _batch_logsumexp(a, axis_name: AxisName):
    """(K,) log sum_i exp a_ik over the rows of the global batch, shifted by the global column
    maxima (a pmax) so that no exp overflows and the largest term of every column is 1."""
    top = jax.lax.stop_gradient(jnp.max(a, axis=0))
    if axis_name is not None:
        top = jax.lax.pmax(top, axis_name)
    return top + jnp.log(_psum(jnp.sum(jnp.exp(a - top), axis=0), axis_name))


def sinkhorn_codes(scores: Array, epsilon: float = 0.05, iterations: int = 3,
                   axis_name: AxisName = None) -> Array:
    """SwAV's codes Q (N, K), rows summing to 1: the Sinkhorn-Knopp equipartition of
    exp(scores / epsilon) over the global batch, `iterations` times alternately normalising
    every prototype's column to total N / K (sums over the batch: a psum over `axis_name`, so
    8 devices give one device's codes) and every example's row to 1.

    Computed in log space (each normalisation a log-sum-exp shifted by its maximum), in float32
    (float64 for float64 scores): exp(scores / 0.05) spans e^+-20 for cosines, and a bf16 sum
    of such terms would lose the small codes entirely. No gradient flows into the codes."""
    dtype = engine.stats_dtype(scores.dtype)
    log_q = jax.lax.stop_gradient(scores).astype(dtype) / epsilon
    n, k = scores.shape
    log_total = jnp.log(jnp.asarray(engine.global_batch_size(n, axis_name) / k, dtype))

    def iteration(_, log_q):
        log_q = log_q - _batch_logsumexp(log_q, axis_name) + log_total  # columns: N / K each
        return log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True)  # rows: 1 each

    # A loop, not unrolled: the program stays one iteration long however many are asked for.
    return jnp.exp(jax.lax.fori_loop(0, iterations, iteration, log_q))


def _check(scores, scale, epsilon, iterations, num_global):
    if jnp.ndim(scores) != 3 or jnp.shape(scores)[0] < 2 or 0 in jnp.shape(scores)[1:]:
        raise ValueError(f"scores must be (V, N, K) with V >= 2 views, N, K >= 1; got shape "
                         f"{jnp.shape(scores)}.")
    if not jnp.issubdtype(jnp.result_type(scores), jnp.floating):
        raise ValueError(f"scores must be floating point; got dtype {jnp.result_type(scores)}.")
    if jnp.ndim(scale) != 0:
        raise ValueError(f"scale must be a scalar; got shape {jnp.shape(scale)}.")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"epsilon must be a number > 0; got {epsilon!r}.")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"sinkhorn_iterations must be an int >= 1; got {iterations!r}.")
    views = jnp.shape(scores)[0]
    if isinstance(num_global, bool) or not isinstance(num_global, int) or not (
            1 <= num_global <= views):
        raise ValueError(f"num_global must be an int in [1, {views}] (the views whose codes "
                         f"are predicted); got {num_global!r}.")


def swav_loss(
    scores: Array,
    scale,
    *,
    epsilon: float = 0.05,
    sinkhorn_iterations: int = 3,
    num_global: int = 2,
    axis_name: AxisName = None,
) -> Array:
    """SwAV's swapped-prediction loss on V views of N samples:

        q_t = sinkhorn(p_t)                            codes of the global views t < num_global
        loss = mean over t < num_global, s != t, i of  - sum_k q_tik log softmax(scale p_si)_k

    with the codes detached (stop-gradient). The first `num_global` views are the global crops
    whose codes are computed; the others (SwAV's multi-crop small views) only predict them.
    scale = 1 / temperature (SwAV's 0.1). As SwAV, the codes come from the current batch alone
    (the optional feature queue of the paper is not implemented).

    Args:
      scores: (V, N, K) scores of every view against the K prototypes (cosines).
      scale: scalar 1 / temperature of the predictions; receives a gradient.
      epsilon: the Sinkhorn's entropic regularisation (SwAV's 0.05).
      sinkhorn_iterations: Sinkhorn-Knopp iterations (SwAV's 3).
      num_global: the views whose codes are computed and predicted.
      axis_name: the `shard_map` batch axes: each device holds all V views of its N / P
        samples, and the Sinkhorn sums and the mean run over the global batch.
    """
    _check(scores, scale, epsilon, sinkhorn_iterations, num_global)
    dtype = engine.stats_dtype(scores.dtype)
    views, n, _ = scores.shape
    log_p = jax.nn.log_softmax(jnp.asarray(scale, dtype) * scores.astype(dtype), axis=-1)
    total = 0.0
    for t in range(num_global):
        codes = sinkhorn_codes(scores[t], epsilon, sinkhorn_iterations, axis_name)
        others = jnp.concatenate([log_p[:t], log_p[t + 1:]])  # (V - 1, n, K)
        total = total - jnp.sum(codes * others)
    pairs = num_global * (views - 1)
    return _psum(total, axis_name) / (pairs * n * ring_size(axis_name))
