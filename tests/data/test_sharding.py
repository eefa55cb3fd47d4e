"""Global batch assembly onto a batch sharding of the 8 fake CPU devices."""
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from contrastive.data import examples, pipeline, sharding


@pytest.fixture(scope="module")
def mesh():
    devices = np.array(jax.devices()[:8]).reshape(4, 2)
    return Mesh(devices, ("batch", "other"))


def test_batch_shard_count(mesh):
    assert sharding.batch_shard_count(NamedSharding(mesh, PartitionSpec("batch"))) == 4
    assert sharding.batch_shard_count(NamedSharding(mesh, PartitionSpec(("batch", "other")))) == 8
    assert sharding.batch_shard_count(NamedSharding(mesh, PartitionSpec())) == 1
    assert sharding.batch_shard_count(NamedSharding(mesh, PartitionSpec(None, "batch"))) == 1


def test_make_global_batch(mesh):
    batch_sharding = NamedSharding(mesh, PartitionSpec(("batch", "other")))
    local = {
        "image": np.arange(16 * 2 * 2 * 1, dtype=np.float32).reshape(16, 2, 2, 1),
        "label": np.arange(16, dtype=np.int32),
    }
    global_batch = sharding.make_global_batch(local, batch_sharding, 16)
    for key, value in local.items():
        assert global_batch[key].shape == value.shape
        assert global_batch[key].sharding.is_equivalent_to(batch_sharding, value.ndim)
        np.testing.assert_array_equal(np.asarray(global_batch[key]), value)
    # Each device holds its own two rows.
    assert {s.data.shape[0] for s in global_batch["label"].addressable_shards} == {2}


def test_indivisible_global_batch_is_a_clear_error(mesh):
    batch_sharding = NamedSharding(mesh, PartitionSpec("batch"))
    with pytest.raises(ValueError, match="not divisible by the 4 shards"):
        sharding.local_batch_size(6, process_count=1, sharding=batch_sharding)
    with pytest.raises(ValueError, match=r"not divisible by the number of processes \(4\)"):
        sharding.local_batch_size(6, process_count=4)
    with pytest.raises(ValueError, match="leading dimension"):
        sharding.make_global_batch({"label": np.zeros(4, np.int32)}, batch_sharding, 8)


def test_pipeline_yields_global_arrays(mesh, digits_train, caption_tokenizer):
    batch_sharding = NamedSharding(mesh, PartitionSpec("batch"))
    transform = examples.ImageTextExample(caption_tokenizer)
    sharded = pipeline.make_iterator(
        digits_train, transform, global_batch_size=32, seed=0, sharding=batch_sharding
    )
    plain = pipeline.make_iterator(digits_train, transform, global_batch_size=32, seed=0)
    batch, expected = next(sharded), next(plain)
    assert isinstance(batch["tokens"], jax.Array)
    assert batch["image"].shape == (32, 8, 8, 1)
    for key in expected:
        np.testing.assert_array_equal(np.asarray(batch[key]), expected[key])
    with pytest.raises(ValueError, match="not divisible by the 4 shards"):
        pipeline.make_iterator(
            digits_train, transform, global_batch_size=30, seed=0, sharding=batch_sharding
        )
