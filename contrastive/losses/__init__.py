"""Contrastive losses over batches of embeddings, all on one blockwise engine.

    clip_loss(x, y, scale)                  symmetric InfoNCE (CLIP, ALIGN, BASIC); label_smoothing
    siglip_loss(x, y, scale, bias)          pairwise sigmoid (SigLIP); label_smoothing
    ntxent_loss(views, scale)               NT-Xent on V views (SimCLR, multi-view InfoNCE)
    supcon_loss(z, labels, scale)           supervised / multi-positive contrastive (SupCon)
    dcl_loss(x, y, scale, sigma=None)       decoupled contrastive (DCL, DCLW)
    hard_negative_loss(x, y, scale, beta)   hard-negative reweighting (HCL, debiased)
    cwcl_loss(x, y, scale, frozen)          soft targets from a frozen tower (CWCL)
    isogclr_loss(x, y, tau_x, tau_y, ...)   a temperature per example (iSogCLR)
    alignment_loss, uniformity_loss         Wang & Isola's geometry (uniformity blockwise)
    clip_geometry_loss(x, y, scale)         CLIP + alignment + uniformity
    auc_loss(x, y, scale)                   pairwise AUC surrogate for retrieval
    z_loss(x, y, scale)                     shift- and scale-invariant Z-loss (spherical family)
    gram_loss(x, y, scale)                  Gramian volume of M >= 2 modalities or views (GRAM)
    amcl_loss(x, y)                         several heads, a temperature per pair (AMCL)
    mochi_loss(x, y, scale, k, ...)         InfoNCE + mixed hard negatives (MoCHi), blockwise top-k
    swav_loss(scores, scale)                swapped prediction of Sinkhorn codes (SwAV)

Dense float64-ready references live in `contrastive.losses.reference`.
"""
from contrastive.losses.amcl import amcl_loss
from contrastive.losses.auc import auc_loss
from contrastive.losses.clip import clip_loss
from contrastive.losses.cwcl import cwcl_loss
from contrastive.losses.dcl import dcl_loss
from contrastive.losses.engine import Reductions, Side, Stats, pairwise_stats
from contrastive.losses.gram import gram_loss
from contrastive.losses.geometry import alignment_loss, clip_geometry_loss, uniformity_loss
from contrastive.losses.hard_negatives import hard_negative_loss
from contrastive.losses.isogclr import isogclr_loss
from contrastive.losses.mochi import mochi_loss
from contrastive.losses.siglip import siglip_loss
from contrastive.losses.supcon import ntxent_loss, supcon_loss
from contrastive.losses.swav import sinkhorn_codes, swav_loss
from contrastive.losses.zloss import z_loss

__all__ = [
    "Reductions",
    "Side",
    "Stats",
    "alignment_loss",
    "amcl_loss",
    "auc_loss",
    "clip_geometry_loss",
    "clip_loss",
    "cwcl_loss",
    "dcl_loss",
    "gram_loss",
    "hard_negative_loss",
    "isogclr_loss",
    "mochi_loss",
    "ntxent_loss",
    "pairwise_stats",
    "siglip_loss",
    "sinkhorn_codes",
    "supcon_loss",
    "swav_loss",
    "uniformity_loss",
    "z_loss",
]
