"""A running top-k of every row of G = q keys^T over the other examples, blockwise: the k keys
most similar to each query, with their similarities, global indices and embeddings, never
holding G.

The sweep is the engine's forward double scan (`engine_forward.tile_sweep`) with a different fold: a scan
over row tiles runs a scan over column tiles; each (b, b) tile of similarities is formed, the
pair of an example with itself (global index i == j, the positive) and padding columns are set
to -inf, and the tile is merged into its rows' running (b, k) top-k (lax.top_k of the running k
and the tile's b candidates), which also carries the chosen keys' embeddings (b, k, d). Under
a ring (`axis_name`) the key blocks visit every device (`parallel.ring.ring_loop`, in pieces of
whole tiles) and the top-k stays with its rows: nothing travels back. Memory per device:
O(n d + n k d + b^2 + b k d); compute one N x N x d matmul plus O(N^2 k d / b) gathers.

Forward only: the selection is piecewise constant, so it takes no gradient; the inputs are
detached (its users, e.g. `mochi`, treat what it returns as constants).

Ties between equal similarities are broken by visiting order (earlier tiles and, on a ring,
this device's own block first), which can differ from lax.top_k's lowest-index rule on the
dense matrix; tied keys with different embeddings have measure zero for real-valued data.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from contrastive.losses.engine_forward import tile_sweep
from contrastive.losses.tiling import Tiling, scores
from contrastive.parallel.ring import AxisName, as_varying, ring_size

Array = jax.Array


class TopK(NamedTuple):
    """Per query row, its k most similar keys, most similar first.

    values: (n, k) similarities <q_i, key_j> in the statistics dtype (float32, or float64).
    ids: (n, k) int32 global indices j of those keys.
    embeddings: (n, k, d) the keys' rows key_j, in the keys' dtype.
    """

    values: Array
    ids: Array
    embeddings: Array


def running_topk(q: Array, keys: Array, k: int, block: int, axis_name: AxisName = None) -> TopK:
    """The top-k of every row of q keys^T over j != i (global indices), blockwise.

    Args:
      q, keys: (n, d) rows (this device's shard of the global batch under `axis_name`); row i
        of q and row i of keys are the same example, excluded from q_i's candidates.
      k: how many to keep, 1 <= k <= N - 1 (N the global batch).
      block: tile edge b (n need not be a multiple of it).
      axis_name: the `shard_map` batch axis (or axes), or None.
    """
    num = q.shape[0] * ring_size(axis_name)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num - 1:
        raise ValueError(f"k must be an int in [1, N - 1] = [1, {num - 1}]; got {k!r}.")
    if isinstance(axis_name, list):
        axis_name = tuple(axis_name)  # a static argument below: hashable
    return _sweep(jax.lax.stop_gradient(q), jax.lax.stop_gradient(keys), k, block, axis_name)


# Jitted (inlined under an outer jit) so that an eager call runs one program, not each scan.
@functools.partial(jax.jit, static_argnames=("k", "block", "axis_name"))
def _sweep(q, keys, k, block, axis_name):
    n, d = q.shape
    tiling = Tiling.of(n, min(block, n))
    dtype = jnp.promote_types(q.dtype, jnp.float32)
    one = jnp.asarray(1, dtype)
    t, b = tiling.num_tiles, tiling.block

    def step(top_i, no_col_state, q_i, key_j, row, col):
        s = scores(q_i, key_j, one, None, dtype)
        excluded = (row.ids[:, None] == col.ids[None, :]) | (col.ids < 0)[None, :]
        return merge(top_i, jnp.where(excluded, -jnp.inf, s), col.ids, key_j), no_col_state

    initial = TopK(jnp.full((t, b, k), -jnp.inf, dtype), jnp.full((t, b, k), -1, jnp.int32),
                   jnp.zeros((t, b, k, d), keys.dtype))
    state, _ = tile_sweep(step, q, keys, as_varying(initial, axis_name), (), tiling, axis_name)
    return TopK(*(tiling.merge(a) for a in state))


def merge(top: TopK, s: Array, ids: Array, key_tile: Array) -> TopK:
    """A (b, k) running top-k merged with a (b, b') tile of candidate similarities `s` (-inf:
    excluded) of the keys `key_tile` (b', d) with global indices `ids` (b',)."""
    k = top.values.shape[1]
    values, pos = jax.lax.top_k(jnp.concatenate([top.values, s], axis=1), k)
    from_tile = pos >= k
    tile_pos = jnp.clip(pos - k, 0, s.shape[1] - 1)
    kept_pos = jnp.clip(pos, 0, k - 1)
    new_ids = jnp.where(from_tile, ids[tile_pos],
                        jnp.take_along_axis(top.ids, kept_pos, axis=1))
    embeddings = jnp.where(from_tile[..., None], key_tile[tile_pos],
                           jnp.take_along_axis(top.embeddings, kept_pos[..., None], axis=1))
    return TopK(values, new_ids, embeddings)
