"""The losses a config may name (`config.loss`), with their options (`config.loss_options`).

Each entry is a function of the task's paired embeddings and scalars,

    loss(x, y, scale, bias, *, labels, block_size, axis_name, **options) -> scalar

`labels` are the batch's class labels (only `supcon` reads them: it is supervised). x and y are
image and caption embeddings (image-text) or two views (two-view). `isogclr` also reads its
per-example state and returns the updated estimates (see `train.per_example`).
"""
import functools
import math

import jax
import jax.numpy as jnp

from contrastive import losses, parallel
from contrastive.losses import isogclr


def _clip(x, y, scale, bias, *, labels, **kw):
    del bias, labels  # InfoNCE has no bias
    return losses.clip_loss(x, y, scale, **kw)


def _siglip(x, y, scale, bias, *, labels, **kw):
    del labels
    return losses.siglip_loss(x, y, scale, bias, **kw)


def _ntxent(x, y, scale, bias, *, labels, decoupled=False, **kw):
    """x and y as two views; negatives include both views of the other samples (SimCLR)."""
    del bias, labels
    return losses.ntxent_loss(jnp.stack([x, y]), scale, decoupled=decoupled, **kw)


def _supcon(x, y, scale, bias, *, labels, decoupled=False, **kw):
    """x and y pooled, positives = every other row with the same class label."""
    del bias
    both = jnp.concatenate([labels, labels])
    return losses.supcon_loss(jnp.concatenate([x, y]), both, scale, decoupled=decoupled, **kw)


def _dcl(x, y, scale, bias, *, labels, sigma=None, **kw):
    del bias, labels
    return losses.dcl_loss(x, y, scale, sigma=sigma, **kw)


def _hard_negative(x, y, scale, bias, *, labels, beta=1.0, tau_plus=0.0, **kw):
    del bias, labels
    return losses.hard_negative_loss(x, y, scale, beta=beta, tau_plus=tau_plus, **kw)


def _cwcl(x, y, scale, bias, *, labels, **kw):
    """The trainer has no separately pre-trained tower, so x's own embeddings, detached, give
    the intra-modal similarities (a self-distilled CWCL)."""
    del bias, labels
    return losses.cwcl_loss(x, y, scale, jax.lax.stop_gradient(x), **kw)


def _clip_geometry(x, y, scale, bias, *, labels, alignment_weight=1.0, uniformity_weight=1.0,
                   t=2.0, **kw):
    del bias, labels
    return losses.clip_geometry_loss(x, y, scale, alignment_weight=alignment_weight,
                                     uniformity_weight=uniformity_weight, t=t, **kw)


def _auc(x, y, scale, bias, *, labels, surrogate="logistic", margin=0.0, **kw):
    del bias, labels
    return losses.auc_loss(x, y, scale, surrogate=surrogate, margin=margin, **kw)


def _isogclr(x, y, scale, bias, *, labels, tau_x, tau_y, log_u_x, log_u_y, gamma=0.8,
             rho=6.0, tau_init=None, tau_lr=None, tau_min=None, tau_max=None, **kw):
    """Per-example temperatures replace the shared scale; the tau_* options belong to the
    temperatures' update (`train.per_example`)."""
    del scale, bias, labels, tau_init, tau_lr, tau_min, tau_max
    return losses.isogclr_loss(x, y, tau_x, tau_y, isogclr.Estimates(log_u_x, log_u_y),
                               gamma=gamma, rho=rho, **kw)


LOSSES = {
    "clip": _clip,
    "siglip": _siglip,
    "ntxent": _ntxent,
    "supcon": _supcon,
    "dcl": _dcl,
    "hard_negative": _hard_negative,
    "cwcl": _cwcl,
    "clip_geometry": _clip_geometry,
    "auc": _auc,
    "isogclr": _isogclr,
}
# Losses with per-example state in the train state (see `train.per_example`).
STATEFUL = frozenset({"isogclr"})


def make_loss(name: str, mesh, block_size: int | None = None, options=None):
    """loss(x, y, scale, bias, **per_example) over global (N, d) embeddings on `mesh`.

    With more than one batch shard the loss runs as a ring under shard_map: each device keeps
    its N/P rows and the other modality's blocks travel around, so no device ever gathers the
    whole batch of embeddings (see contrastive.parallel.ring)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    loss = functools.partial(LOSSES[name], block_size=block_size, **dict(options or {}))
    batch_shards = math.prod(mesh.shape[a] for a in parallel.BATCH_AXES if a in mesh.shape)
    if batch_shards > 1:
        return parallel.ring.sharded_loss(loss, mesh, parallel.BATCH_AXES)
    return loss
