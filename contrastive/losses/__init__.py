"""Contrastive losses over batches of embeddings, all on one blockwise engine.

    clip_loss(x, y, scale)          symmetric InfoNCE (CLIP, ALIGN, BASIC; NT-Xent on two views)
    siglip_loss(x, y, scale, bias)  pairwise sigmoid (SigLIP)

Dense float64-ready references live in `contrastive.losses.reference`.
"""
from contrastive.losses.clip import clip_loss
from contrastive.losses.engine import Reductions, Stats, pairwise_stats
from contrastive.losses.siglip import siglip_loss

__all__ = [
    "Reductions",
    "Stats",
    "clip_loss",
    "pairwise_stats",
    "siglip_loss",
]
