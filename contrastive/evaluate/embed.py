"""A model's embeddings of a whole host array, in fixed-size sharded batches."""
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel


def unit_rows(x) -> np.ndarray:
    """Rows scaled to unit L2 norm, in float64 (every metric here is computed in float64);
    ValueError unless x is a non-empty (N, d) array."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (N, d) array, got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def make_batch_embedder(fn: Callable, mesh, rules, batch_size: int):
    """embed(params, model_state, array) -> NumPy (N, d), calling fn(params, model_state,
    inputs) on batches of `batch_size` rows (the last one padded), split over the mesh's
    batch axes. Every process passes the same array and gets every row back."""
    batch_sharding = parallel.batch_sharding(mesh)
    shards = parallel.batch_shards(mesh)
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
