"""iSogCLR: a learnable temperature per example, with SogCLR's moving-average estimator."""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from contrastive.losses import engine
from contrastive.losses.clip import positive_scores
from contrastive.parallel.ring import AxisName


def _row_logits(s, row, col):
    """(S_ij - S_ii) / tau_i for j != i (row anchors); -inf on the positive."""
    positive, tau = row.data
    logits = (s - positive[:, None]) / tau[:, None]
    return jnp.where(row.ids[:, None] != col.ids[None, :], logits, -jnp.inf)


def _col_logits(s, row, col):
    """(S_ij - S_jj) / tau_j for i != j (column anchors)."""
    positive, tau = col.data
    logits = (s - positive[None, :]) / tau[None, :]
    return jnp.where(row.ids[:, None] != col.ids[None, :], logits, -jnp.inf)


_REDUCTIONS = engine.Reductions(row_lse=_row_logits, col_lse=_col_logits)


class Estimates(NamedTuple):
    """The moving averages u of the batch's anchors, in log space: log u of the image (x) and
    text (y) anchors. -inf means "never seen": the first update sets u = gamma g."""

    log_u_x: jax.Array
    log_u_y: jax.Array


def isogclr_loss(
    x: jax.Array,
    y: jax.Array,
    tau_x: jax.Array,
    tau_y: jax.Array,
    estimates: Estimates,
    *,
    gamma: float = 0.8,
    rho: float = 6.0,
    block_size: Optional[int] = None,
    axis_name: AxisName = None,
):
    """iSogCLR's bimodal objective (Qiu et al. 2023, "Not All Semantics are Created Equal:
    Contrastive Self-supervised Learning with Automatic Temperature Individualization"), each
    anchor with its own temperature, robust (DRO) form:

        F = 1/N sum_i tau_i (log g_i + rho)  (+ the same for the text anchors),
        g_i = 1/(N-1) sum_{j != i} exp((S_ij - S_ii) / tau_i),   S = x y^T (cosine scores)

    g_i is a batch estimate of a mean over the whole dataset, so (SogCLR) each example keeps a
    moving average u_i <- (1 - gamma) u_i + gamma g_i across the steps it is seen, and the
    gradient uses tau_i / u_i grad g_i in place of the biased tau_i grad log g_i. The temperatures
    get d F / d tau_i = log u_i + rho + (tau_i / u_i) d g_i / d tau_i. Everything is in log space
    (g can reach e^{2 / tau}).

    Args:
      x, y: (N, d) paired unit embeddings.
      tau_x, tau_y: (N,) positive temperatures of the batch's image and text anchors (gathered
        from the per-example state by example id); they receive gradients.
      estimates: the anchors' previous log u (gathered the same way).
      gamma: the moving average's weight of the new batch estimate.
      rho: the DRO radius; larger rho pushes temperatures up.
      block_size, axis_name: as for `clip_loss`.

    Returns:
      (loss, new estimates): the loss's value is F on this batch; its gradients are the
      estimator's. Write the new estimates back to the per-example state.
    """
    engine.check_inputs(x, y, 1.0, None, block_size)
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1]; got {gamma}.")
    for name, tau in (("tau_x", tau_x), ("tau_y", tau_y)):
        if jnp.shape(tau) != jnp.shape(x)[:1]:
            raise ValueError(f"{name} must be ({jnp.shape(x)[0]},), one per row; got "
                             f"{jnp.shape(tau)}.")
    x, y = engine.common_dtype(x, y)
    dtype = engine.stats_dtype(x.dtype)
    positives = positive_scores(x, y, 1.0)
    tau_x, tau_y = (jnp.asarray(t, dtype) for t in (tau_x, tau_y))
    stats = engine.pairwise_stats(x, y, 1.0, None, _REDUCTIONS, block_size, axis_name,
                                  row_data=(positives, tau_x), col_data=(positives, tau_y))
    n = engine.global_batch_size(x.shape[0], axis_name)
    if n < 2:
        raise ValueError("iSogCLR needs a batch of at least two pairs (an anchor and a negative).")
    log_negatives = math.log(n - 1)

    def anchor_terms(lse, tau, log_u_old):
        log_g = lse - log_negatives
        keep = math.log(1 - gamma) if gamma < 1 else -math.inf
        log_u = jnp.logaddexp(keep + log_u_old,
                              math.log(gamma) + jax.lax.stop_gradient(log_g))
        # grad: tau/u grad g = (tau g / u) grad log g;  d/d tau: log u + rho + (tau/u) dg/dtau.
        weight = jax.lax.stop_gradient(tau * jnp.exp(log_g - log_u))
        surrogate = weight * log_g + tau * jax.lax.stop_gradient(log_u + rho)
        value = tau * (log_g + rho)
        return jax.lax.stop_gradient(value - surrogate) + surrogate, log_u

    rows, log_u_x = anchor_terms(stats.row_lse, tau_x, estimates.log_u_x)
    cols, log_u_y = anchor_terms(stats.col_lse, tau_y, estimates.log_u_y)
    loss = engine.global_mean(rows, axis_name) + engine.global_mean(cols, axis_name)
    return loss, Estimates(log_u_x, log_u_y)


def initial_state(num_examples: int, *, tau_init: float = 0.07):
    """The per-example state of a dataset: temperatures tau_x, tau_y and log u = -inf (unseen)."""
    tau = jnp.full((num_examples,), tau_init, jnp.float32)
    unseen = jnp.full((num_examples,), -jnp.inf, jnp.float32)
    return {"tau_x": tau, "tau_y": tau, "log_u_x": unseen, "log_u_y": unseen}


def update_state(rows: dict, row_grads: dict, estimates: dict, *, tau_lr: float = 1e-2,
                 tau_min: float = 0.005, tau_max: float = 1.0):
    """(the batch's rows of the state after a step, their mean temperatures).

    The new estimates replace the old; the temperatures take a projected gradient step of
    their own (not the optimiser's),

        tau_i <- clip(tau_i - tau_lr * dF_i / dtau_i, tau_min, tau_max),

    with dF_i / dtau_i the derivative of anchor i's own term (the batch loss's gradient times
    the batch size). The paper uses Adam for the temperatures; a plain step keeps the state to
    one array per side.
    """
    batch = rows["tau_x"].shape[0]
    new = {"log_u_x": estimates["log_u_x"], "log_u_y": estimates["log_u_y"]}
    for name in ("tau_x", "tau_y"):
        new[name] = jnp.clip(rows[name] - tau_lr * batch * row_grads[name], tau_min, tau_max)
    return new, {"mean_tau_x": jnp.mean(new["tau_x"]), "mean_tau_y": jnp.mean(new["tau_y"])}
