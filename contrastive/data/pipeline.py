"""The input pipeline: shuffled, per-process, batched and exactly resumable (grain).

Every example is a pure function of its *position* p in one global stream:
  record  = source[shuffle_epoch(p mod N)]   (a fresh permutation each epoch, seeded)
  example = transform(record, rng(seed, p))   (caption choice, augmentation)
Global batch b holds positions [b G, (b + 1) G); process i of P reads its contiguous slice
[b G + i G/P, b G + (i + 1) G/P). So processes read disjoint rows, together exactly the global
batch, and the global batch sequence does not depend on the number of processes.

The iterator's state is the index of the next global batch plus a fingerprint of the settings
(a small JSON-able dict): restoring it, even with another process count, resumes on exactly the
batches the uninterrupted run would have seen.

Sharded sources (webdataset) over several processes pass `process_groups`: process i then
reads only the records of its own shards (i, i + P, ...), in its own per-epoch shuffle, still
a pure function of its local position; the state then also records the process count.

A record that raises decode.BadRecordError (corrupt image, missing caption) is skipped: the
position takes the next good record after it instead, still a pure function of the position,
and the batch's count of skipped records is added to the iterator's `records_skipped`.
"""
from collections.abc import Callable, Sequence

import logging

import grain
import jax
import numpy as np

from contrastive.data import decode
from contrastive.data import sharding as sharding_lib

Transform = Callable[[dict, np.random.Generator], dict]

_INFINITE_EXAMPLES = 2**62  # Stands in for "repeat forever"; still a valid Python len().
MAX_CONSECUTIVE_BAD = 64  # More bad records in a row than this means the data is broken.


def _derived_seed(seed: int, purpose: int) -> int:
    """An independent 32-bit seed per purpose (grain's shuffle seeds epoch e with seed + e, so
    raw neighbouring seeds would share permutations)."""
    return int(np.random.SeedSequence([seed, purpose]).generate_state(1)[0])


def global_position(local_index: int, local_batch: int, process_index: int, process_count: int):
    """Position in the global stream of this process's local_index-th example."""
    batch, offset = divmod(local_index, local_batch)
    return (batch * process_count + process_index) * local_batch + offset


class _ExampleAt:
    """local index -> example dict (picklable, so grain worker processes can run it)."""

    def __init__(self, source, transform, seed, shuffle, total_examples, local_batch, process,
                 group=None):
        self._source = source
        self._transform = transform
        self._seed = seed
        # group: the record indices this process reads (its own shards), or None: any record.
        self._group = None if group is None else np.asarray(group, np.int64)
        size, purpose = (len(source), 0) if group is None else (len(group), 2 + process[0])
        self._order = (
            grain.MapDataset.range(size).shuffle(seed=_derived_seed(seed, purpose))
            if shuffle
            else None
        )
        self._total_examples = total_examples
        self._local_batch = local_batch
        self._process = process  # (index, count)

    def __call__(self, local_index: int) -> dict:
        position = global_position(local_index, self._local_batch, *self._process)
        # With a group, this process walks its own records by its local index.
        walked = position if self._group is None else local_index
        size = len(self._source) if self._group is None else len(self._group)
        start = self._order[walked] if self._order is not None else walked % size
        rng = np.random.default_rng([self._seed, 1, position])
        record_index, example, skipped = transform_first_good(
            self._source, self._transform, start, rng, self._group)
        example["skipped"] = np.int32(skipped)
        # Positions past the data (padding of a final partial batch) are masked out.
        example["mask"] = np.bool_(position < self._total_examples)
        # The record's index in its split: the key of per-example state (iSogCLR's temperatures).
        example["index"] = np.int32(record_index)
        return example


def transform_first_good(source, transform, start: int, rng=None, group=None):
    """(index, transform(source[index], rng), bad records passed over) for the first record
    that decodes from `start` on (wrapping), within `group` (record indices) if given;
    RuntimeError after MAX_CONSECUTIVE_BAD."""
    size = len(source) if group is None else len(group)
    for skipped in range(min(MAX_CONSECUTIVE_BAD, size)):
        k = (start + skipped) % size
        index = k if group is None else int(group[k])
        try:
            return index, dict(transform(source[index], rng)), skipped
        except decode.BadRecordError as error:
            logging.warning("skipping a bad record: %s", error)
    raise RuntimeError(f"{MAX_CONSECUTIVE_BAD} bad records in a row from record {start}: "
                       "the data looks broken")


def first_good_records(source, count: int) -> list[dict]:
    """The first `count` records that decode (evaluation, shapes for the model)."""
    records = []
    for index in range(len(source)):
        if len(records) == count:
            break
        try:
            records.append(source[index])
        except decode.BadRecordError as error:
            logging.warning("skipping a bad record: %s", error)
    return records


class DataIterator:
    """Iterator over local batches (or global jax.Arrays when built with a sharding).

    get_state() -> {"step": next global batch index, "seed", "global_batch_size",
    "num_examples", "shuffle", "num_epochs"}; set_state(state) resumes there and raises a
    ValueError if the state came from a pipeline with different settings.
    """

    def __init__(self, batches, fingerprint, read_options, worker_count, sharding):
        self._batches = batches
        self._fingerprint = fingerprint
        self._read_options = read_options
        self._worker_count = worker_count
        self._sharding = sharding
        self._step = 0
        self._iterator = None
        self.records_skipped = 0  # bad records passed over by this process, in all batches
        self.last_skipped = 0  # ... in the last batch

    def __iter__(self):
        return self

    def __len__(self) -> int:
        """Number of batches in the whole stream (huge for an endless one)."""
        return len(self._batches)

    def __next__(self) -> dict:
        if self._iterator is None:
            dataset = self._batches[self._step :].to_iter_dataset(self._read_options)
            if self._worker_count:
                options = grain.MultiprocessingOptions(num_workers=self._worker_count)
                dataset = dataset.mp_prefetch(options)
            self._iterator = iter(dataset)
        batch = dict(next(self._iterator))
        self.last_skipped = int(np.sum(batch.pop("skipped")))
        self.records_skipped += self.last_skipped
        self._step += 1
        if self._sharding is not None:
            batch = sharding_lib.make_global_batch(
                batch, self._sharding, self._fingerprint["global_batch_size"]
            )
        return batch

    def get_state(self) -> dict:
        return {"step": self._step, **self._fingerprint, "records_skipped": self.records_skipped}

    def set_state(self, state: dict) -> None:
        mismatched = {
            key: (state.get(key), expected)
            for key, expected in self._fingerprint.items()
            if state.get(key) != expected
        }
        if mismatched:
            details = ", ".join(f"{k}: saved {s!r} != now {e!r}" for k, (s, e) in mismatched.items())
            raise ValueError(f"Data iterator state is from a different pipeline ({details}).")
        step = int(state["step"])
        if not 0 <= step <= len(self._batches):
            raise ValueError(f"Data iterator step {step} is outside 0..{len(self._batches)}.")
        self.close()
        self._step = step
        self.records_skipped = int(state.get("records_skipped", 0))

    def close(self) -> None:
        """Stops prefetching (threads or worker processes)."""
        if self._iterator is not None and hasattr(self._iterator, "close"):
            self._iterator.close()
        self._iterator = None


def make_iterator(
    source: Sequence,
    transform: Transform,
    *,
    global_batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    sharding: jax.sharding.Sharding | None = None,
    num_threads: int = 2,
    worker_count: int = 0,
    process_groups: Sequence[Sequence[int]] | None = None,
) -> DataIterator:
    """Batches of `transform(record, rng)` over `source`, this process's rows only.

    Args:
      source: random access records (a tfds data source from `digits.load_split` or
        `tfds_source.load_split`, or any sequence of dicts).
      transform: record, rng -> dict of arrays (see `examples`).
      global_batch_size: rows per step over all processes; must divide by the process count
        and by the sharding's batch shards.
      seed: drives the per-epoch shuffle and every example's rng (non-negative).
      num_epochs: None repeats forever (training); a number ends the stream after it.
      drop_remainder: with num_epochs, whether a final partial global batch is dropped or
        padded to full size with mask=False rows.
      process_index, process_count: default jax.process_index()/process_count(); pass them to
        simulate several processes.
      sharding: if given, batches come back as global jax.Arrays on it (via
        jax.make_array_from_process_local_data); otherwise as local NumPy arrays.
      num_threads: threads that prepare batches ahead (decoding holds the GIL, so they mostly
        overlap I/O); worker_count: grain worker processes for CPU-bound decoding and
        augmentation (grain reads absl flags there, so the program must have parsed them,
        e.g. by running under absl.app).
      process_groups: per process, the record indices it may read (webdataset: the records of
        its own shards, `sources.process_groups`); each process then walks its own shuffled
        records and reads no other shard; None: any process reads any record.

    Each batch is the transform's dict stacked over local rows plus "mask": bool [B].
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in 0..{process_count - 1}.")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}.")
    local_batch = sharding_lib.local_batch_size(global_batch_size, process_count, sharding)
    num_examples = len(source)
    if num_examples == 0:
        raise ValueError("The data source is empty.")

    total = _INFINITE_EXAMPLES if num_epochs is None else num_epochs * num_examples
    num_batches = total // global_batch_size
    if num_epochs is not None and not drop_remainder:
        num_batches = -(-total // global_batch_size)
    if num_batches == 0:
        raise ValueError(
            f"{total} examples do not fill one global batch of {global_batch_size}; "
            "use drop_remainder=False or a smaller batch."
        )
    group = None
    if process_groups is not None:
        if len(process_groups) != process_count:
            raise ValueError(f"{len(process_groups)} process groups for {process_count} processes")
        group = process_groups[process_index]
        if len(group) == 0:
            raise ValueError(f"process {process_index} of {process_count} has no records to read "
                             "(fewer shards than processes?)")
    example_at = _ExampleAt(
        source, transform, seed, shuffle, total, local_batch, (process_index, process_count), group
    )
    batches = (
        grain.MapDataset.range(num_batches * local_batch)
        .map(example_at)
        .batch(local_batch, drop_remainder=True)
    )
    fingerprint = {
        "seed": seed,
        "global_batch_size": global_batch_size,
        "num_examples": num_examples,
        "shuffle": shuffle,
        "num_epochs": num_epochs,
    }
    if process_groups is not None:  # the batches then depend on the process count
        fingerprint["process_count"] = process_count
    read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * num_threads)
    return DataIterator(batches, fingerprint, read_options, worker_count, sharding)
