"""Multi-host batch assembly: each process's local rows -> one global jax.Array per field.

The batch sharding comes from `contrastive.parallel` (the only place that names mesh axes);
here it is just a `jax.sharding.Sharding` whose leading dimension is the batch.
"""
from collections.abc import Mapping

import jax
import numpy as np


def batch_shard_count(sharding: jax.sharding.Sharding) -> int:
    """Into how many distinct pieces `sharding` cuts the leading (batch) dimension."""
    num_devices = len(sharding.device_set)
    spec = getattr(sharding, "spec", None)
    ndim = max(len(spec), 1) if spec is not None else 1
    # Every mesh axis size divides the device count, so this shape always divides evenly.
    index_map = sharding.devices_indices_map((num_devices,) * ndim)
    return len({(index[0].start, index[0].stop) for index in index_map.values()})


def local_batch_size(
    global_batch_size: int,
    process_count: int | None = None,
    sharding: jax.sharding.Sharding | None = None,
) -> int:
    """Rows each process reads: global_batch_size / process_count, after checking that the
    global batch splits evenly over the processes and over the sharding's batch shards."""
    process_count = jax.process_count() if process_count is None else process_count
    if global_batch_size <= 0:
        raise ValueError(f"Global batch size must be positive, got {global_batch_size}.")
    if global_batch_size % process_count:
        raise ValueError(
            f"Global batch size {global_batch_size} is not divisible by the number of "
            f"processes ({process_count})."
        )
    if sharding is not None:
        shards = batch_shard_count(sharding)
        if global_batch_size % shards:
            raise ValueError(
                f"Global batch size {global_batch_size} is not divisible by the {shards} "
                f"shards of the batch dimension in {sharding}."
            )
    return global_batch_size // process_count


def make_global_batch(
    local_batch: Mapping[str, np.ndarray],
    sharding: jax.sharding.Sharding,
    global_batch_size: int,
) -> dict[str, jax.Array]:
    """Assembles this process's rows of every field into global arrays on `sharding`."""
    rows = local_batch_size(global_batch_size, sharding=sharding)

    def assemble(x):
        x = np.asarray(x)
        if x.shape[:1] != (rows,):
            raise ValueError(
                f"Local batch has leading dimension {x.shape[:1]}, expected ({rows},) = global "
                f"batch {global_batch_size} / {jax.process_count()} processes."
            )
        global_shape = (global_batch_size,) + x.shape[1:]
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return {key: assemble(value) for key, value in local_batch.items()}
