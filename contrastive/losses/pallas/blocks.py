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
    for large d), None for all of d; grad_rows, grad_cols: rows and cols of the backward kernels
    (None: the same as the forward's); out: the chunk of d of the gradient each backward program
    accumulates, None for all of d.

    The backward keeps a (grad_rows, out) float32 accumulator on chip: 64 x 1024 floats is
    256 KiB, all of an H100 SM's registers. So at large d either grad_rows shrinks (16-32 rows:
    smaller, less efficient matmuls) or out does (out < d recomputes each tile of S d / out
    times). The forward has no such accumulator and wants large tiles.
    """

    rows: int = 64
    cols: int = 64
    depth: Optional[int] = 64
    out: Optional[int] = None
    grad_rows: Optional[int] = None
    grad_cols: Optional[int] = None
    num_warps: Optional[int] = None  # GPU only; None lets Triton choose
    num_stages: Optional[int] = None

    def check(self) -> "Blocks":
        optional = ("depth", "out", "grad_rows", "grad_cols")
        for name in ("rows", "cols") + optional:
            v = getattr(self, name)
            if v is None and name in optional:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 16 or v & (v - 1):
                raise ValueError(
                    f"Pallas block size {name} must be a power of two >= 16 (Triton's smallest "
                    f"matmul tile){' or None' if name in optional else ''}; got {v!r}."
                )
        return self

    def fit(self, n: int, d: int) -> "Blocks":
        """Concrete blocks for an (n, d) problem: no edge beyond the padded problem (a batch of
        7 needs no 64-row block), depth None -> all of d in one chunk, out None -> all of d,
        grad_rows/grad_cols None -> rows/cols."""
        n_cap, d_cap = _next_pow2(max(n, 16)), _next_pow2(max(d, 16))
        out = None if self.out is None or self.out >= d_cap else self.out
        depth = None if self.depth is None else min(self.depth, d_cap)
        d_pad = _round_up(d, max(depth or 16, out or 16))
        return dataclasses.replace(
            self, rows=min(self.rows, n_cap), cols=min(self.cols, n_cap),
            grad_rows=min(self.grad_rows or self.rows, n_cap),
            grad_cols=min(self.grad_cols or self.cols, n_cap),
            depth=depth or d_pad, out=out or d_pad,
        )

    def padded_n(self, n: int) -> int:
        """Rows padded to a whole number of every row and column block (all powers of two)."""
        return _round_up(n, max(self.rows, self.cols, self.grad_rows, self.grad_cols))

    def padded_d(self, d: int) -> int:
        """d padded to whole depth and output chunks (fitted blocks); zero columns change no
        dot product."""
        return _round_up(d, max(self.depth, self.out))


# Starting points, not tuned on hardware (no accelerator was available when they were written):
# on GPU, GEMM-like 128 x 64 forward tiles and 32-row backward tiles, whose 32 x d accumulator
# fits in registers up to d = 1024 (see `Blocks`); the MXU-sized 128 x 128 on TPU, d unchunked;
# large tiles and unchunked d in interpret mode, where each grid step and loop iteration has a
# fixed cost. experiments/loss_gpu.py --tune tries alternatives.
DEFAULT_BLOCKS = {
    "gpu": Blocks(rows=128, cols=64, depth=64, grad_rows=32, grad_cols=64, num_warps=8,
                  num_stages=2),
    "tpu": Blocks(rows=128, cols=128, depth=None),
    "cpu": Blocks(rows=128, cols=128, depth=None),
}


def choose(n: int, d: int, block_size: Optional[int] = None, blocks: Optional[Blocks] = None,
           backend: Optional[str] = None) -> Blocks:
    """The blocks for an (n, d) problem: `blocks` if given, else the backend's defaults with
    every tile edge (forward and backward rows and cols) = block_size when that is given; then
    fitted to n and d."""
    if blocks is None:
        blocks = DEFAULT_BLOCKS.get(backend or jax.default_backend(), DEFAULT_BLOCKS["gpu"])
        if block_size is not None:
            blocks = dataclasses.replace(blocks, rows=block_size, cols=block_size,
                                         grad_rows=block_size, grad_cols=block_size)
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
