"""The engine's forward sweep: every requested reduction of S, one (b, b) tile at a time.

For each y block (the local one, or each of the ring's in turn) a scan over row tiles runs a
scan over column tiles (`tile_sweep`, which other forward-only sweeps such as `topk` share);
each tile of S is formed, its elementwise terms are folded into running statistics of its rows
and of its columns, and it is dropped. Row statistics stay; column statistics travel with their
block and arrive home complete.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from contrastive.losses.reductions import COL_SIDE, ROW_SIDE, Reductions, Stats, tile_structure
from contrastive.losses.tiling import RING_CHUNKS, Side, Tiling, lse_update, scores
from contrastive.parallel.ring import as_varying, ring_index, ring_loop


def tile_sweep(step, x, y, row_state, col_state, tiling: Tiling, axis_name,
               row_data=None, col_data=None):
    """The sweep every forward pass over S shares: step(row_state_i, col_state_j, x_i, y_j,
    row, col) -> (row_state_i, col_state_j) for each pair of a row tile of x and a column tile
    of y (the local block, or each of the ring's blocks in turn), with `row` and `col` the
    tiles' `Side`s. row_state and col_state are pytrees of (T, b, ...) per-tile states, made
    varying over the ring by the caller; row states stay, column states travel with their
    block and arrive home complete. Returns the final (row_state, col_state)."""
    row_ids = tiling.ids(ring_index(axis_name) * tiling.n)

    def sweep(row_state, y_block, col_state):
        y_tiles, col_ids, col_tiles = y_block

        def row_tile_step(col_state, row_in):
            x_i, row_ids_i, row_data_i, row_state_i = row_in
            row = Side(row_ids_i, row_data_i)

            def col_tile_step(row_state_i, col_in):
                y_j, col_ids_j, col_data_j, col_state_j = col_in
                return step(row_state_i, col_state_j, x_i, y_j, row, Side(col_ids_j, col_data_j))

            row_state_i, col_state = jax.lax.scan(
                col_tile_step, row_state_i, (y_tiles, col_ids, col_tiles, col_state))
            return col_state, row_state_i

        col_state, row_state = jax.lax.scan(
            row_tile_step, col_state, (tiling.split(x), row_ids, tiling.split_data(row_data),
                                       row_state))
        return row_state, col_state

    y_block = (tiling.split(y), row_ids, tiling.split_data(col_data))
    return ring_loop(sweep, row_state, y_block, col_state, axis_name, RING_CHUNKS)


def forward(x, y, scale, bias, row_data, col_data, reductions: Reductions, block: int,
            axis_name) -> Stats:
    tiling = Tiling.of(x.shape[0], block)
    dtype = scale.dtype
    structure = tile_structure(reductions, block, dtype, row_data, col_data)

    def step(row_state_i, col_state_j, x_i, y_j, row, col):
        s = scores(x_i, y_j, scale, bias, dtype)
        terms = reductions.tile_terms(s, row, col, dtype)
        row_valid = (row.ids >= 0)[:, None] if tiling.padded else None
        col_valid = (col.ids >= 0)[None, :] if tiling.padded else None
        # Padding columns are in no row's reduction, padding rows in no column's.
        return _fold(row_state_i, terms, col_valid, 1), _fold(col_state_j, terms, row_valid, 0)

    row_state = as_varying(_initial(structure, ROW_SIDE, tiling, dtype), axis_name)
    col_state = as_varying(_initial(structure, COL_SIDE, tiling, dtype), axis_name)
    row_state, col_state = tile_sweep(step, x, y, row_state, col_state, tiling, axis_name,
                                      row_data, col_data)
    return Stats.from_leaves(structure, _finish({**row_state, **col_state}, tiling))


def _initial(structure, names, tiling: Tiling, dtype) -> dict:
    """Running statistics of T tiles of b rows (or columns): (max, sum of exp) per lse, sums."""
    zeros = jnp.zeros((tiling.num_tiles, tiling.block), dtype)
    state = {}
    for name in names:
        if name in structure:
            count = structure[name].num_leaves
            lse = (jnp.full_like(zeros, -jnp.inf), zeros)
            state[name] = [lse if name.endswith("lse") else zeros] * count
    return state


def _fold(state: dict, terms: dict, valid, axis: int) -> dict:
    """Folds a tile's terms into the running statistics of its rows (axis 1) or columns (0)."""
    folded = {}
    for name, leaves in state.items():
        if name.endswith("lse"):
            folded[name] = [lse_update(m, l, t, valid, axis) for (m, l), t in zip(leaves, terms[name])]
        else:
            folded[name] = [acc + jnp.sum(t if valid is None else jnp.where(valid, t, 0), axis=axis)
                            for acc, t in zip(leaves, terms[name])]
    return folded


def _finish(state: dict, tiling: Tiling) -> dict:
    """Running statistics -> (n,) results: lse = max + log(sum of exp); sums as they are."""
    return {
        name: [tiling.merge(m + jnp.log(l)) for m, l in leaves] if name.endswith("lse")
        else [tiling.merge(a) for a in leaves]
        for name, leaves in state.items()
    }
