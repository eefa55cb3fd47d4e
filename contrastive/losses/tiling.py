"""Tiles of the score matrix: splitting rows into blocks, one tile of scores, online log-sum-exp."""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Tiling(NamedTuple):
    """The n local rows cut into T = ceil(n / b) tiles of b rows, zero-padded at the end."""

    n: int
    block: int
    num_tiles: int

    @classmethod
    def of(cls, n: int, block: int) -> "Tiling":
        return cls(n, block, math.ceil(n / block))

    @property
    def padded(self) -> bool:
        return self.n % self.block != 0

    def split(self, a: Array) -> Array:
        """(n, ...) -> (T, b, ...)."""
        pad = self.num_tiles * self.block - self.n
        if pad:
            a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape((self.num_tiles, self.block) + a.shape[1:])

    def merge(self, a: Array) -> Array:
        """(T, b, ...) -> (n, ...), padding dropped."""
        return a.reshape((-1,) + a.shape[2:])[: self.n]

    def ids(self, offset) -> Array:
        """(T, b) global row indices offset + 0 .. n-1, and -1 on padding rows."""
        local = jnp.arange(self.num_tiles * self.block, dtype=jnp.int32)
        return jnp.where(local < self.n, local + offset, -1).reshape(self.num_tiles, self.block)


def scores(x_tile, y_tile, scale, bias, dtype):
    """One (b, b) tile of S = scale * x y^T + bias, accumulated and returned in `dtype`."""
    g = jax.lax.dot_general(x_tile, y_tile, (((1,), (1,)), ((), ())), preferred_element_type=dtype)
    s = scale * g
    return s if bias is None else s + bias


def lse_update(m, l, s, valid, axis):
    """Online log-sum-exp: folds tile s (entries where `valid`) into running max m and sum l.

    Keeps l = sum exp(s - m). Every row and column meets a valid entry in its first tile (padding
    only ever sits in the last tile), so m is finite from then on and exp(m - m_new) is safe.
    """
    if valid is not None:
        s = jnp.where(valid, s, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(s, axis=axis))
    l_new = l * jnp.exp(m - m_new) + jnp.sum(jnp.exp(s - jnp.expand_dims(m_new, axis)), axis=axis)
    return m_new, l_new
