"""The engine's backward sweep: the forward's sweeps again, recomputing each tile of S.

For a tile, with the saved (N,) log-sum-exps and the incoming cotangents g of the statistics,

    dL/dT_ij = g_i exp(T_ij - row_lse_i)    for a row lse of terms T = f(S, row, col)
               g_j exp(T_ij - col_lse_j)    for a column lse
               g_i  (row sum),  g_j  (column sum)

and the VJP of the loss's elementwise functions turns these into dL/dS for the tile and into
gradients of the per-example features. The tile then adds dS Y to its rows' dX and dS^T X to its
columns' dY (the column block's dY and feature gradients travel with it around the ring).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from contrastive.losses.reductions import (
    COL_SIDE, ROW_SIDE, Reductions, Stats, float_leaves, replace_float_leaves, tile_structure)
from contrastive.losses.tiling import RING_CHUNKS, Side, Tiling, scores
from contrastive.parallel.ring import as_varying, ring_index, ring_loop


def backward(x, y, scale, bias, row_data, col_data, stats: Stats, cotangents: Stats,
             reductions: Reductions, block: int, axis_name):
    tiling = Tiling.of(x.shape[0], block)
    dtype = scale.dtype
    structure = tile_structure(reductions, block, dtype, row_data, col_data)
    row_ids = tiling.ids(ring_index(axis_name) * tiling.n)
    zero_tiles = as_varying(jnp.zeros((tiling.num_tiles, tiling.block), dtype), axis_name)

    def side_inputs(names):
        """Per name: the saved lse's (made finite) and the cotangents, as (T, b) tiles."""
        saved = stats.leaves(names)
        flowed = cotangents.leaves(names)
        lse, g = {}, {}
        for name in names:
            if name not in structure:
                continue
            if name.endswith("lse"):  # a row whose terms are all -inf has lse -inf: exp(-inf) = 0
                lse[name] = [tiling.split(jnp.where(jnp.isfinite(v), v, 0).astype(dtype))
                             for v in saved[name]]
            count = structure[name].num_leaves
            g[name] = ([zero_tiles] * count if flowed[name] is None
                       else [tiling.split(c.astype(dtype)) for c in flowed[name]])
        return lse, g

    row_lse, row_g = side_inputs(ROW_SIDE)
    col_lse, col_g = side_inputs(COL_SIDE)

    # The gradient accumulators are loop carries updated one tile at a time (not scan inputs
    # mapped to outputs), so XLA updates them in place: one buffer each, which matters most for
    # the ring, where the block's dY is also in flight. They are flat (T b, ...) rows, the
    # gradients' own shape, so that the last scaling writes over them (see below).
    def sweep(row_acc, y_block, col_acc):
        dx_rows, d_row_rows, dbias = row_acc
        y_tiles, col_ids, col_tiles, col_lse, col_g = y_block  # a block, or a piece of one

        def row_tile_step(acc, row_in):
            dx_rows, d_row_rows, col_acc, dbias = acc
            i, x_i, row_ids_i, row_data_i, row_lse_i, row_g_i = row_in
            row_valid = (row_ids_i >= 0)[:, None] if tiling.padded else None

            def col_tile_step(acc, col_in):
                dx_i, d_row_i, (dy_rows, d_col_rows), dbias = acc
                j, y_j, col_ids_j, col_data_j, col_lse_j, col_g_j = col_in
                s = scores(x_i, y_j, scale, bias, dtype)
                valid = None
                if tiling.padded:  # padding is in no reduction, so it gets no gradient
                    valid = row_valid & (col_ids_j >= 0)[None, :]

                def terms_of(s, row_floats, col_floats):
                    row = Side(row_ids_i, replace_float_leaves(row_data_i, row_floats))
                    col = Side(col_ids_j, replace_float_leaves(col_data_j, col_floats))
                    return reductions.tile_terms(s, row, col, dtype)

                terms, pullback = jax.vjp(
                    terms_of, s, float_leaves(row_data_i), float_leaves(col_data_j))
                cot = _tile_cotangents(terms, row_lse_i, row_g_i, col_lse_j, col_g_j, valid)
                ds, d_row, d_col = pullback(cot)
                if valid is not None:
                    ds = jnp.where(valid, ds, 0)
                # The matmuls take dS in the input dtype (bf16 stays on the fast path) and
                # accumulate in the statistics dtype.
                ds_in = ds.astype(x.dtype)
                dx_i += jnp.dot(ds_in, y_j, preferred_element_type=dtype)
                dy_rows = tiling.add_rows(
                    dy_rows, j, jnp.dot(ds_in.T, x_i, preferred_element_type=dtype))
                d_row_i = [a + g.astype(dtype) for a, g in zip(d_row_i, d_row)]
                d_col_rows = [tiling.add_rows(a, j, g.astype(dtype))
                              for a, g in zip(d_col_rows, d_col)]
                if bias is not None:
                    dbias += jnp.sum(ds)
                return (dx_i, d_row_i, (dy_rows, d_col_rows), dbias), None

            (dx_i, d_row_i, col_acc, dbias), _ = jax.lax.scan(
                col_tile_step,
                (tiling.rows(dx_rows, i), [tiling.rows(a, i) for a in d_row_rows], col_acc, dbias),
                (jnp.arange(y_tiles.shape[0]), y_tiles, col_ids, col_tiles, col_lse, col_g))
            dx_rows = tiling.set_rows(dx_rows, i, dx_i)
            d_row_rows = [tiling.set_rows(a, i, g) for a, g in zip(d_row_rows, d_row_i)]
            return (dx_rows, d_row_rows, col_acc, dbias), None

        row_inputs = (jnp.arange(tiling.num_tiles), tiling.split(x), row_ids,
                      tiling.split_data(row_data), row_lse, row_g)
        (dx_rows, d_row_rows, col_acc, dbias), _ = jax.lax.scan(
            row_tile_step, (dx_rows, d_row_rows, col_acc, dbias), row_inputs)
        return (dx_rows, d_row_rows, dbias), col_acc

    def zero_rows(a):  # a flat (T b, ...) accumulator for a's rows
        return as_varying(jnp.zeros((tiling.num_tiles * tiling.block,) + a.shape[1:], dtype),
                          axis_name)

    row_acc = (zero_rows(x), [zero_rows(a) for a in float_leaves(row_data)],
               as_varying(jnp.zeros((), dtype), axis_name))
    col_acc = (zero_rows(y), [zero_rows(a) for a in float_leaves(col_data)])
    y_block = (tiling.split(y), row_ids, tiling.split_data(col_data), col_lse, col_g)
    (dx_rows, d_row_rows, dbias), (dy_rows, d_col_rows) = ring_loop(
        sweep, row_acc, y_block, col_acc, axis_name, RING_CHUNKS)

    # Gradients of G = X Y^T, where S = scale * G + bias.
    dg_y, dg_x = tiling.trim(dx_rows), tiling.trim(dy_rows)  # dG Y and dG^T X
    dscale = jnp.sum(x.astype(dtype) * dg_y)  # sum_ij dS_ij G_ij = sum_i <x_i, (dS Y)_i>
    # dscale first: then dX = scale dG Y (and whatever the caller adds to it) is the last use
    # of the accumulator, and XLA can write it in place instead of into a second buffer.
    dscale, dg_y = jax.lax.optimization_barrier((dscale, dg_y))
    if axis_name is not None:  # scale and bias are shared by all shards: sum their gradients
        dscale, dbias = jax.lax.psum((dscale, dbias), axis_name)
    dx = (scale * dg_y).astype(x.dtype)
    dy = (scale * dg_x).astype(y.dtype)
    return (dx, dy, dscale, None if bias is None else dbias,
            _feature_grads(row_data, d_row_rows, tiling), _feature_grads(col_data, d_col_rows, tiling))


def _tile_cotangents(terms, row_lse, row_g, col_lse, col_g, valid) -> dict:
    """dL/dT for each of a tile's terms T (see the module docstring), zero on padding."""
    cot = {}
    for name, tiles in terms.items():
        if name == "row_lse":
            cot[name] = [g[:, None] * jnp.exp(t - l[:, None])
                         for t, l, g in zip(tiles, row_lse[name], row_g[name])]
        elif name == "col_lse":
            cot[name] = [g[None, :] * jnp.exp(t - l[None, :])
                         for t, l, g in zip(tiles, col_lse[name], col_g[name])]
        elif name == "row_sum":
            cot[name] = [jnp.broadcast_to(g[:, None], t.shape) for t, g in zip(tiles, row_g[name])]
        else:
            cot[name] = [jnp.broadcast_to(g[None, :], t.shape) for t, g in zip(tiles, col_g[name])]
        if valid is not None:
            cot[name] = [jnp.where(valid, c, 0) for c in cot[name]]
    return cot


def _feature_grads(data, grad_rows, tiling: Tiling):
    """Gradients of the per-example features: trimmed accumulators for float leaves, None for
    others."""
    if data is None:
        return None
    grads = iter(grad_rows)
    leaves, treedef = jax.tree.flatten(data)
    return treedef.unflatten([
        tiling.trim(next(grads)).astype(a.dtype) if jnp.issubdtype(a.dtype, jnp.inexact) else None
        for a in leaves])
