"""Block sizes of the Pallas kernels, the padding they imply, and per-backend compiler settings."""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Blocks:
    """Tile edges (powers of two, at least 16: Triton's smallest matmul) and GPU launch knobs.

    rows: rows of S per program (the grid axis); cols: columns per step of the in-kernel loop;
    depth: the chunk of d per step of the contraction that forms a tile (bounds on-chip memory
    for large d); out: the chunk of d of the gradient each backward program accumulates, None for
    all of d. The backward keeps a (rows, out) float32 accumulator on chip, so at large d either
    rows or out must shrink; out < d recomputes each tile of S d / out times.
    """

    rows: int = 64
    cols: int = 64
    depth: Optional[int] = 64
    out: Optional[int] = None
    num_warps: Optional[int] = None  # GPU only; None lets Triton choose
    num_stages: Optional[int] = None

    def check(self) -> "Blocks":
        for name in ("rows", "cols", "depth", "out"):
            v = getattr(self, name)
            if v is None and name in ("depth", "out"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 16 or v & (v - 1):
                raise ValueError(
                    f"Pallas block size {name} must be a power of two >= 16 (Triton's smallest "
                    f"matmul tile){' or None' if name in ('depth', 'out') else ''}; got {v!r}."
                )
        return self

    def fit(self, n: int, d: int) -> "Blocks":
        """Concrete blocks for an (n, d) problem: no edge beyond the padded problem (a batch of
        7 needs no 64-row block), depth None -> all of d in one chunk, out None -> all of d."""
        n_cap, d_cap = _next_pow2(max(n, 16)), _next_pow2(max(d, 16))
        out = None if self.out is None or self.out >= d_cap else self.out
        depth = None if self.depth is None else min(self.depth, d_cap)
        d_pad = _round_up(d, max(depth or 16, out or 16))
        return dataclasses.replace(
            self, rows=min(self.rows, n_cap), cols=min(self.cols, n_cap),
            depth=depth or d_pad, out=out or d_pad,
        )

    def padded_n(self, n: int) -> int:
        """Rows padded to a whole number of row and of column blocks (both powers of two)."""
        return _round_up(n, max(self.rows, self.cols))

    def padded_d(self, d: int) -> int:
        """d padded to whole depth and output chunks (fitted blocks); zero columns change no
        dot product."""
        return _round_up(d, max(self.depth, self.out))


# Starting points, not tuned on hardware (no accelerator was available when they were written):
# FlashAttention-like 64 x 64 tiles on GPU; the MXU-sized 128 x 128 on TPU, d unchunked; large
# tiles and unchunked d in interpret mode, where each grid step and loop iteration has a fixed cost.
DEFAULT_BLOCKS = {
    "gpu": Blocks(rows=64, cols=64, depth=64, num_warps=4, num_stages=2),
    "tpu": Blocks(rows=128, cols=128, depth=None),
    "cpu": Blocks(rows=128, cols=128, depth=None),
}


def choose(n: int, d: int, block_size: Optional[int] = None, blocks: Optional[Blocks] = None,
           backend: Optional[str] = None) -> Blocks:
    """The blocks for an (n, d) problem: `blocks` if given, else the backend's defaults with
    rows = cols = block_size when that is given; then fitted to n and d."""
    if blocks is None:
        blocks = DEFAULT_BLOCKS.get(backend or jax.default_backend(), DEFAULT_BLOCKS["gpu"])
        if block_size is not None:
            blocks = dataclasses.replace(blocks, rows=block_size, cols=block_size)
    return blocks.check().fit(n, d)


def pad(a: jax.Array, blocks: Blocks) -> jax.Array:
    """(n, d) -> (padded_n, padded_d) with zeros; no copy when nothing is padded."""
    n, d = a.shape
    pads = [(0, blocks.padded_n(n) - n), (0, blocks.padded_d(d) - d)]
    return jnp.pad(a, pads) if pads[0][1] or pads[1][1] else a


def pad_rows(v: jax.Array, n_pad: int) -> jax.Array:
    return jnp.pad(v, (0, n_pad - v.shape[0])) if n_pad > v.shape[0] else v


def compiler_params(backend: str, blocks: Blocks, grid_dims: int):
    """Triton launch settings on GPU, parallel grid axes on TPU, nothing in interpret mode."""
    if backend == "gpu":
        from jax.experimental.pallas import triton as pl_triton

        return pl_triton.CompilerParams(num_warps=blocks.num_warps, num_stages=blocks.num_stages)
    if backend == "tpu":
        from jax.experimental.pallas import tpu as pltpu

        return pltpu.CompilerParams(dimension_semantics=("parallel",) * grid_dims)
    return None


def _next_pow2(v: int) -> int:
    return 1 << (v - 1).bit_length()


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m
