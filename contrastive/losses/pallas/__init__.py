"""Fused Pallas kernels for the loss statistics: each tile of S = scale * X Y^T + bias lives only
in on-chip memory, between the matmul that forms it and the reductions that consume it.

    pairwise_stats(x, y, scale, bias, Reductions(...))  the engine's Stats: row/column lse of S
                                                        and sums of SigLIP's pair nll, differentiable
    check_impl(impl, axis_name)                     the losses' `impl=` argument, validated

Layout: `losses.tiling` (the per-tile math, shared with the XLA engine), `forward` (row statistics kernel), `backward` (row gradient
kernel), `stats` (the custom VJP joining them), `blocks` (block sizes, padding, launch knobs).
The losses select these kernels with `impl="pallas"`: Triton on GPU, Mosaic on TPU, Pallas'
interpreter on CPU (slow; for tests). The XLA engine (`losses.engine`) stays the default.

Status: the interpreter runs them against the float64 references, and the tests lower them to
Triton IR; they have not run on a GPU yet (no block size is tuned). On TPU they lower to Mosaic
(checked by hand, once) but the kernels stream the other operand from a whole-array block, which
Mosaic places in VMEM: fine for Triton (a pointer), limiting on TPU to N d that fits in VMEM; a
TPU variant would pipeline B over a second grid axis instead.
"""
from contrastive.losses.pallas.blocks import Blocks
from contrastive.losses.pallas.select import IMPLS, check_impl
from contrastive.losses.pallas.stats import check_reductions, pairwise_stats

__all__ = ["Blocks", "IMPLS", "check_impl", "check_reductions", "pairwise_stats"]
