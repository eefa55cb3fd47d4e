"""MoCHi: InfoNCE with synthetic hard negatives mixed from each query's hardest negatives."""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from contrastive.losses import engine
from contrastive.losses.clip import positive_scores
from contrastive.losses.topk import running_topk
from contrastive.parallel.ring import AxisName

_REDUCTIONS = engine.Reductions(row_lse=True, col_lse=True)


class Schedule(NamedTuple):
    """The fixed mixing recipe for top-k lists of length k (indices into the sorted top-k).

    first, second, alpha: (s1,) synthetic negative m mixes n_first[m] and n_second[m] with weight
      alpha[m] on the first.
    query_mixed, beta: (s2,) synthetic negative m mixes the query (weight beta[m] < 1/2) with
      n_query_mixed[m].
    """

    first: np.ndarray
    second: np.ndarray
    alpha: np.ndarray
    query_mixed: np.ndarray
    beta: np.ndarray


def mixing_schedule(k: int, num_mixed: int, num_query_mixed: int) -> Schedule:
    """The deterministic choice that stands in for the paper's random draws.

    Pairs of the sorted top-k (0 = hardest) by increasing gap, then position: (0, 1), (1, 2),
    ..., (k-2, k-1), (0, 2), (1, 3), ..., cycled when s1 exceeds the k (k - 1) / 2 pairs; the
    m-th mix has alpha_m = (m + 1) / (s1 + 1), a uniform grid on (0, 1), so that a repeated pair
    still gives a new point. The m-th query mix uses negative m mod k with
    beta_m = (m + 1) / (2 (s2 + 1)), a uniform grid on (0, 1/2). k < 2 leaves no pairs (s1
    terms absent), k = 0 no negatives at all (s2 terms absent)."""
    pairs = [(p, p + gap) for gap in range(1, k) for p in range(k - gap)]
    s1 = num_mixed if pairs else 0
    s2 = num_query_mixed if k else 0
    chosen = [pairs[m % len(pairs)] for m in range(s1)]
    return Schedule(
        np.array([p for p, _ in chosen], np.int32), np.array([q for _, q in chosen], np.int32),
        (np.arange(s1) + 1.0) / (s1 + 1), np.arange(s2, dtype=np.int32) % max(k, 1),
        (np.arange(s2) + 1.0) / (2 * (s2 + 1)))


def check_options(k, num_mixed, num_query_mixed) -> None:
    """One clear ValueError for a bad option, before JAX."""
    for name, v in (("k", k), ("num_mixed", num_mixed), ("num_query_mixed", num_query_mixed)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an int >= 0; got {v!r}.")
    if num_mixed and k < 2:
        raise ValueError(f"num_mixed = {num_mixed} mixes pairs of the k hardest negatives: "
                         f"needs k >= 2; got k={k} (set num_mixed=0).")
    if num_query_mixed and k < 1:
        raise ValueError(f"num_query_mixed = {num_query_mixed} mixes the query with one of the k "
                         f"hardest negatives: needs k >= 1; got k={k} (set num_query_mixed=0).")


def mochi_loss(
    x: jax.Array,
    y: jax.Array,
    scale,
    *,
    k: int = 16,
    num_mixed: int = 16,
    num_query_mixed: int = 4,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """Symmetric InfoNCE with hard negative mixing (MoCHi; Kalantidis et al. 2020, "Hard Negative
    Mixing for Contrastive Learning"), the batch's other examples as the negatives:

        S = scale x y^T;  for query q_i = x_i: n_1, ..., n_k = the k rows y_j (j != i) with the
        highest <x_i, y_j>, hardest first
        h_m  = normalize(alpha_m n_{p_m} + (1 - alpha_m) n_{q_m}),      m = 1 .. s1
        h'_m = normalize(beta_m x_i + (1 - beta_m) n_{r_m}),  beta_m < 1/2, m = 1 .. s2
        row_i = log(sum_j e^{S_ij} + sum_m e^{scale <x_i, sg(h_m)>}
                    + sum_m e^{scale <x_i, sg(h'_m)>}) - S_ii

    and the same with x and y swapped (queries y_j, negatives x_i) for the columns; the loss is
    1/(2N) sum_i (row_i + col_i). sg is stop-gradient, as in the paper: the synthetic negatives
    are constants, so their logits' gradient reaches only the query (and the scale). The
    paper's random pairs and coefficients are replaced by a fixed grid (`mixing_schedule`), so
    the loss is a pure function of its inputs. The real negatives go through the engine (row_lse
    and col_lse of S, with their VJP); the top-k through `topk.running_topk`: neither holds
    S. Memory per device: the engine's, plus O(n (k + s1 + s2) d + b^2) for its n = N / P rows.

    k is clipped to the N - 1 negatives a batch has: N = 1 has none, so no synthetic terms, and
    the loss is InfoNCE's (0); N = 2 has one, so no pairs (s1 terms absent) but s2 terms.
    k = num_mixed = num_query_mixed = 0 (or num_mixed = num_query_mixed = 0) is `clip_loss`.
    A normalised mix of two antipodal negatives (norm 0) would be 0 / 0: norms are floored at
    1e-12 (the mix is then ~0, a neutral negative of logit ~0).

    Args:
      x, y: (N, d) paired embeddings, L2-normalised (as the paper's features).
      scale: scalar 1 / temperature; receives a gradient.
      k: the number of hardest negatives to mix from (the paper's N, there from a queue).
      num_mixed: s1, negatives mixed from pairs of the k hardest.
      num_query_mixed: s2, negatives mixed from the query and one of the k hardest.
      block_size, axis_name: as for `clip_loss` (the ring: 8 devices equal one).

    The paper's MoCHi (N, s, s') mixes from the N = 128 .. 1024 hardest of a 16k-65k memory
    queue, with s and s' from 0 to a few thousand; the defaults scale that down to in-batch
    negatives of batches of a few hundred: the 16 hardest, s1 = 16, s2 = 4.
    """
    engine.check_inputs(x, y, scale, None, block_size)
    check_options(k, num_mixed, num_query_mixed)
    x, y = engine.common_dtype(x, y)
    stats = engine.pairwise_stats(x, y, scale, None, _REDUCTIONS, block_size, axis_name)
    positives = positive_scores(x, y, scale)
    k = min(k, engine.global_batch_size(x.shape[0], axis_name) - 1)
    schedule = mixing_schedule(k, num_mixed, num_query_mixed)
    block = engine.choose_block_size(x.shape[0], block_size)
    rows = _with_synthetic(stats.row_lse, x, y, scale, k, schedule, block, axis_name)
    cols = _with_synthetic(stats.col_lse, y, x, scale, k, schedule, block, axis_name)
    return 0.5 * (engine.global_mean(rows - positives, axis_name)
                  + engine.global_mean(cols - positives, axis_name))


def synthetic_negatives(q, hardest, schedule: Schedule, dtype):
    """(n, s1 + s2, d) unit synthetic negatives of the queries q (n, d) from their hardest
    negatives (n, k, d), in `dtype`, detached."""
    q, hardest = jax.lax.stop_gradient(q).astype(dtype), hardest.astype(dtype)
    alpha = jnp.asarray(schedule.alpha, dtype)[None, :, None]
    beta = jnp.asarray(schedule.beta, dtype)[None, :, None]
    mixed = alpha * hardest[:, schedule.first] + (1 - alpha) * hardest[:, schedule.second]
    query_mixed = beta * q[:, None, :] + (1 - beta) * hardest[:, schedule.query_mixed]
    h = jnp.concatenate([mixed, query_mixed], axis=1)
    norm = jnp.sqrt(jnp.maximum(jnp.sum(h * h, axis=-1, keepdims=True), 1e-24))
    return jax.lax.stop_gradient(h / norm)


def _with_synthetic(lse, q, keys, scale, k, schedule, block, axis_name):
    """log(e^lse + sum of e^{scale <q_i, h>} over q_i's synthetic negatives h)."""
    if len(schedule.alpha) + len(schedule.beta) == 0:
        return lse
    top = running_topk(q, keys, k, block, axis_name)
    h = synthetic_negatives(q, top.embeddings, schedule, lse.dtype)
    logits = jnp.asarray(scale, lse.dtype) * jnp.einsum("nd,nsd->ns", q.astype(lse.dtype), h)
    return jnp.logaddexp(lse, jax.scipy.special.logsumexp(logits, axis=1))
