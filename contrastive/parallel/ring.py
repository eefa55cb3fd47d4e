"""Ring collectives for blockwise losses under `shard_map`.

Each of the P devices on the batch axes keeps its own rows; the other modality's blocks visit
every device in turn, one `lax.ppermute` hop per step. Against an all-gather this keeps
per-device memory at O(N/P d) instead of O(N d), and each hop's transfer overlaps the compute
on the block in hand, so the ring costs no more time when compute per block exceeds one hop.
Blocks can travel in pieces, one ring per piece (`ring_loop(..., chunks)`), so that a device
holds a piece of the visiting block and its accumulators rather than whole blocks.

Axis names are whatever the caller passes (the trainer passes `sharding.BATCH_AXES`); None means
no ring: one device, or a caller outside `shard_map`.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from contrastive.parallel.sharding import BATCH_AXES

AxisName = Optional[Union[str, Sequence[str]]]


def ring_size(axis_name: AxisName) -> int:
    """P, the number of devices around the ring (1 without a ring)."""
    return 1 if axis_name is None else jax.lax.axis_size(_axes(axis_name))


def ring_index(axis_name: AxisName):
    """This device's position on the ring, 0 .. P-1 (the order of the batch shards)."""
    return 0 if axis_name is None else jax.lax.axis_index(_axes(axis_name))


def ring_shift(tree, axis_name: AxisName):
    """Sends every leaf to the next device on the ring (device k -> k + 1 mod P)."""
    size = ring_size(axis_name)
    if size == 1:
        return tree
    perm = [(k, (k + 1) % size) for k in range(size)]
    return jax.tree.map(lambda a: jax.lax.ppermute(a, _axes(axis_name), perm), tree)


def as_varying(tree, axis_name: AxisName):
    """Marks fresh arrays (zeros, -inf) as differing across the ring's devices, as the
    statistics they start will; `shard_map` checks that loop carries keep one such type."""
    if axis_name is None:
        return tree
    return jax.tree.map(lambda a: jax.lax.pcast(a, _axes(axis_name), to="varying"), tree)


def ensure_varying(tree, axis_name: AxisName):
    """`as_varying` for the leaves (or the axes of a leaf) not already varying: a caller's
    replicated value broadcast to per-row shape, mixed with per-row arrays."""
    if axis_name is None:
        return tree

    def cast(a):
        varying = jax.typeof(a).manual_axis_type.varying
        missing = tuple(ax for ax in _axes(axis_name) if ax not in varying)
        return jax.lax.pcast(a, missing, to="varying") if missing else a

    return jax.tree.map(cast, tree)


def ring_loop(step: Callable, local, visitor, payload, axis_name: AxisName, chunks: int = 1):
    """Runs `step` against each device's block in turn and brings the block's results home.

        local, payload = step(local, visitor, payload)

    `local` stays on this device (e.g. statistics of this device's rows); `visitor` is a block's
    read-only inputs, sent ahead to the next device before `step` runs so that the transfer
    overlaps the compute; `payload` holds the block's accumulators, sent on after `step`. After
    P steps every payload is back on the device that owns its block. Returns (local, payload).

    `chunks` > 1 sends each block in pieces, one ring per piece, one ring after the other:
    `step` sees a piece of every block, and a device holds one piece of a visitor and one of a
    payload (and their copies in flight) instead of whole blocks, 4 / chunks of a block instead
    of 4. Each piece's payload comes home complete into its place in `payload`. The steps become
    chunks x P, each with 1 / chunks of the compute and of the transfer, so the overlap holds.
    Pieces are cut along the leading axes: the visitor's first leaf has L rows (e.g. L tiles)
    and every other leaf a multiple m L of them (e.g. flat accumulators of b rows per tile); a
    piece of k of the first leaf's rows takes k m rows of each leaf. There are `chunks` pieces
    (at most L) of ceil(L / chunks), and one shorter piece where that does not divide L.
    """
    size = ring_size(axis_name)
    length = jax.tree.leaves(visitor)[0].shape[0]
    if size == 1 or chunks <= 1 or length <= 1:
        return _ring_pass(step, local, visitor, payload, axis_name, size)
    for a in jax.tree.leaves((visitor, payload)):
        if a.ndim == 0 or a.shape[0] % length:
            raise ValueError(f"every visitor and payload leaf's leading axis must be a multiple "
                             f"of the first visitor leaf's ({length}); got shape {a.shape}")
    piece = -(-length // chunks)
    full, rest = divmod(length, piece)

    def cut(tree, start, rows):
        return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(
            a, start * (a.shape[0] // length), rows * (a.shape[0] // length)), tree)

    def put(tree, part, start):  # in place: the loop carry's buffer is updated, not copied
        return jax.tree.map(lambda a, b: jax.lax.dynamic_update_slice_in_dim(
            a, b, start * (a.shape[0] // length), 0), tree, part)

    def one_piece(start, rows, local, payload):
        local, done = _ring_pass(step, local, cut(visitor, start, rows), cut(payload, start, rows),
                                 axis_name, size)
        return local, put(payload, done, start)

    if rest:  # the shorter piece first, a ring of its own shape; then the loop is the payload's
        local, payload = one_piece(0, rest, local, payload)  # last writer (XLA keeps it in place)
    return jax.lax.fori_loop(
        0, full, lambda q, carry: one_piece(rest + q * piece, piece, *carry), (local, payload))


def _ring_pass(step, local, visitor, payload, axis_name, size):
    """One ring: `step` against every device's (piece of a) block, payloads back home."""

    def hop(carry, _):
        local, visitor, payload = carry
        next_visitor = ring_shift(visitor, axis_name)  # in flight while `step` computes
        local, payload = step(local, visitor, payload)
        return (local, next_visitor, ring_shift(payload, axis_name)), None

    if size > 1:  # P - 1 hops with a visitor moving on; the last block needs no onward send
        (local, visitor, payload), _ = jax.lax.scan(hop, (local, visitor, payload), length=size - 1)
    local, payload = step(local, visitor, payload)
    return local, ring_shift(payload, axis_name)


def _axes(axis_name):
    return axis_name if isinstance(axis_name, str) else tuple(axis_name)


def sharded_loss(loss_fn: Callable, mesh, batch_axes: Sequence[str] = BATCH_AXES):
    """`loss_fn(x, y, *scalars, axis_name=..., **per_example)` as a function of global arrays,
    for jit.

    x, y and the keyword `per_example` pytrees (labels, frozen embeddings, per-example
    temperatures: leading axis N) are split over `batch_axes` (replicated over the other mesh
    axes); the positional scalars (scale, bias) are replicated. Inside, each device runs the
    ring form of the loss on its N / P rows. The loss's outputs are replicated, except arrays
    with N rows (e.g. iSogCLR's per-example estimates), which come back split like x.
    """
    batch_axes = tuple(a for a in batch_axes if a in mesh.shape)
    num_shards = 1
    for axis in batch_axes:
        num_shards *= mesh.shape[axis]
    rows, replicated = PartitionSpec(batch_axes), PartitionSpec()

    def loss(x, y, *scalars, **per_example):
        n = jnp.shape(x)[0] if jnp.ndim(x) else None
        for name, a in [("x", x), ("y", y)] + [
            (f"{key} leaf", leaf) for key, tree in per_example.items()
            for leaf in jax.tree.leaves(tree)
        ]:
            if jnp.ndim(a) < 1 or jnp.shape(a)[0] % num_shards or jnp.shape(a)[0] != n:
                raise ValueError(
                    f"the global batch of {name} (shape {jnp.shape(a)}) must divide evenly over "
                    f"the {num_shards} batch shards of mesh axes {batch_axes} (mesh "
                    f"{dict(mesh.shape)}) and have the {n} rows of x; choose a batch size that "
                    f"is a multiple of {num_shards}"
                )
        keys = sorted(per_example)

        def body(x, y, scalars, extras):
            return loss_fn(x, y, *scalars, axis_name=batch_axes, **dict(zip(keys, extras)))

        out_shape = jax.eval_shape(
            lambda *a: loss_fn(*a[:2], *a[2], **dict(zip(keys, a[3]))),
            x, y, scalars, [per_example[k] for k in keys])
        out_specs = jax.tree.map(
            lambda o: rows if o.ndim and o.shape[0] == n else replicated, out_shape)
        return jax.shard_map(
            body, mesh=mesh, in_specs=(rows, rows, replicated, rows), out_specs=out_specs,
        )(x, y, scalars, [per_example[k] for k in keys])

    return loss
