"""A model's embeddings of a whole host array, in fixed-size sharded batches."""
import math
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel


def make_batch_embedder(fn: Callable, mesh, rules, batch_size: int):
    """embed(params, model_state, array) -> NumPy (N, d), calling fn(params, model_state,
    inputs) on batches of `batch_size` rows (the last one padded), split over the mesh's
    batch axes. Every process passes the same array and gets every row back."""
    batch_sharding = parallel.batch_sharding(mesh)
    shards = math.prod(mesh.shape[axis] for axis in parallel.BATCH_AXES)
    batch_size = -(-batch_size // shards) * shards  # a multiple of the batch shards
    jitted = jax.jit(fn, out_shardings=NamedSharding(mesh, PartitionSpec()))

    def embed(params, model_state, array: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(array), batch_size):
            chunk = array[start : start + batch_size]
            padded = np.concatenate(
                [chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)]
            )
            inputs = jax.make_array_from_callback(
                padded.shape, batch_sharding, lambda index, padded=padded: padded[index]
            )
            with parallel.sharding_context(mesh, rules):
                out = jitted(params, model_state, inputs)
            outputs.append(np.asarray(out.addressable_data(0))[: len(chunk)])
        return np.concatenate(outputs)

    return embed
