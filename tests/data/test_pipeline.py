"""The pipeline: batch format, determinism, epochs, per-process shards and exact resume."""
import json

import numpy as np
import pytest

from contrastive.data import augment, digits, examples, pipeline

BATCH = 64


def record_id(record, rng):
    """Transform exposing which record (and which rng) produced each row."""
    return {"id": np.int64(record["id"]), "draw": rng.integers(1 << 30)}


def ids_iterator(source, **kwargs):
    kwargs = {"global_batch_size": BATCH, "seed": 0, **kwargs}
    return pipeline.make_iterator(source, record_id, **kwargs)


def take(iterator, count):
    return [next(iterator) for _ in range(count)]


def assert_same_batches(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_image_text_batch_format(digits_train, caption_tokenizer):
    transform = examples.ImageTextExample(caption_tokenizer)
    batch = next(pipeline.make_iterator(digits_train, transform, global_batch_size=16, seed=0))
    assert set(batch) == {"image", "tokens", "label", "mask", "index"}
    assert batch["image"].shape == (16, 8, 8, 1) and batch["image"].dtype == np.float32
    assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0
    assert batch["tokens"].shape == (16, 12) and batch["tokens"].dtype == np.int32
    assert batch["label"].shape == (16,) and batch["label"].dtype == np.int32
    assert batch["mask"].all()
    for tokens, label in zip(batch["tokens"], batch["label"]):
        assert caption_tokenizer.decode(tokens) in digits.captions_for(int(label))


def test_two_view_batch_format(digits_train):
    transform = examples.TwoViewExample(augment.SimCLRAugment(size=8, blur_probability=0.0))
    batch = next(pipeline.make_iterator(digits_train, transform, global_batch_size=8, seed=0))
    assert set(batch) == {"view1", "view2", "label", "mask", "index"}
    assert batch["view1"].shape == batch["view2"].shape == (8, 8, 8, 1)
    assert not np.array_equal(batch["view1"], batch["view2"])


def test_same_seed_same_batches(digits_train, caption_tokenizer):
    transform = examples.ImageTextExample(caption_tokenizer)
    make = lambda: pipeline.make_iterator(digits_train, transform, global_batch_size=32, seed=7)
    assert_same_batches(take(make(), 3), take(make(), 3))


def test_different_seeds_differ(digits_train):
    first = next(ids_iterator(digits_train, seed=0))
    second = next(ids_iterator(digits_train, seed=1))
    assert not np.array_equal(first["id"], second["id"])


def test_each_epoch_is_a_new_permutation(digits_train):
    size = len(digits_train)
    batches = list(ids_iterator(digits_train, num_epochs=2, drop_remainder=False))
    ids = np.concatenate([b["id"][b["mask"]] for b in batches])
    assert len(ids) == 2 * size
    all_ids = sorted(digits_train[i]["id"] for i in range(size))
    assert sorted(ids[:size]) == all_ids and sorted(ids[size:]) == all_ids
    assert not np.array_equal(ids[:size], ids[size:])
    assert not np.array_equal(ids[:size], np.sort(ids[:size]))


def test_unshuffled_follows_source_order(digits_train):
    batch = next(ids_iterator(digits_train, shuffle=False))
    np.testing.assert_array_equal(batch["id"], [digits_train[i]["id"] for i in range(BATCH)])


def test_final_partial_batch_is_padded_and_masked(digits_train):
    batches = list(ids_iterator(digits_train, num_epochs=1, drop_remainder=False))
    assert len(batches) == -(-len(digits_train) // BATCH)
    assert batches[-1]["mask"].sum() == len(digits_train) % BATCH
    assert all(b["id"].shape == (BATCH,) for b in batches)
    dropped = list(ids_iterator(digits_train, num_epochs=1))
    assert len(dropped) == len(digits_train) // BATCH and all(b["mask"].all() for b in dropped)


@pytest.mark.parametrize("saved_after, crosses_epoch", [(3, False), (19, True)])
def test_restore_gives_the_same_next_batches(digits_train, saved_after, crosses_epoch):
    # The four batches after the save run past the end of the first epoch or not.
    assert ((saved_after + 4) * BATCH > len(digits_train)) == crosses_epoch
    uninterrupted = ids_iterator(digits_train)
    expected = take(uninterrupted, saved_after + 4)[saved_after:]

    interrupted = ids_iterator(digits_train)
    take(interrupted, saved_after)
    saved = json.loads(json.dumps(interrupted.get_state()))  # As a checkpoint stores it.
    interrupted.close()
    assert saved["step"] == saved_after

    resumed = ids_iterator(digits_train)
    resumed.set_state(saved)
    assert_same_batches(take(resumed, 4), expected)


def test_restore_into_a_running_iterator(digits_train):
    iterator = ids_iterator(digits_train)
    state = iterator.get_state()
    first = take(iterator, 2)
    iterator.set_state(state)
    assert_same_batches(take(iterator, 2), first)


def test_state_from_another_pipeline_is_rejected(digits_train):
    state = ids_iterator(digits_train, seed=0).get_state()
    with pytest.raises(ValueError, match="seed: saved 0 != now 1"):
        ids_iterator(digits_train, seed=1).set_state(state)


def test_two_processes_read_disjoint_shards_covering_the_epoch(digits_train):
    per_process = []
    for process_index in range(2):
        batches = list(
            ids_iterator(
                digits_train, num_epochs=1, drop_remainder=False,
                process_index=process_index, process_count=2,
            )
        )
        assert all(b["id"].shape == (BATCH // 2,) for b in batches)
        per_process.append(np.concatenate([b["id"][b["mask"]] for b in batches]))
    first, second = per_process
    assert not set(first) & set(second)
    assert len(first) + len(second) == len(digits_train)
    assert set(first) | set(second) == {digits_train[i]["id"] for i in range(len(digits_train))}


def test_global_batch_does_not_depend_on_process_count(digits_train):
    single = take(ids_iterator(digits_train), 3)
    halves = [take(ids_iterator(digits_train, process_index=i, process_count=2), 3) for i in (0, 1)]
    for step in range(3):
        for key in ("id", "draw"):
            joined = np.concatenate([halves[0][step][key], halves[1][step][key]])
            np.testing.assert_array_equal(joined, single[step][key])


def test_resume_with_another_process_count(digits_train):
    """A state saved by one process resumes two processes on the same global batches."""
    single = ids_iterator(digits_train)
    take(single, 5)
    state = single.get_state()
    expected = next(single)
    halves = []
    for process_index in (0, 1):
        iterator = ids_iterator(digits_train, process_index=process_index, process_count=2)
        iterator.set_state(state)
        halves.append(next(iterator)["id"])
    np.testing.assert_array_equal(np.concatenate(halves), expected["id"])


def test_invalid_settings_are_clear_errors(digits_train):
    with pytest.raises(ValueError, match="not divisible by the number of processes"):
        ids_iterator(digits_train, global_batch_size=63, process_index=0, process_count=2)
    with pytest.raises(ValueError, match="process_index 2"):
        ids_iterator(digits_train, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="do not fill one global batch"):
        ids_iterator(digits_train, global_batch_size=2048, num_epochs=1)
