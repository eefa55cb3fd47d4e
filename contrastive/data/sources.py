"""Which source a config names: config.data.name = "digits", a tfds dataset, "webdataset"
(data.shards / data.eval_shards brace patterns) or "csv" (data.csv_path / data.eval_csv_path,
data.csv_image_column / data.csv_caption_column / data.csv_separator)."""
import os

import numpy as np

from contrastive.data import csv_source, decode, digits, tfds_source, webdataset_source

FILE_FORMATS = ("webdataset", "csv")


def _pick(data, train_field: str, eval_field: str, split: str) -> str:
    """The train pattern for the train split, the eval one (else the train one) otherwise."""
    value = data[eval_field] if split == data.eval_split and data[eval_field] else data[train_field]
    if not value:
        raise ValueError(f"data.name={data.name!r} needs config.data.{train_field}")
    return os.path.expanduser(value)


def load_split(data, split: str):
    """Random-access records of one split from the config's `data` section."""
    if data.name == "digits":
        return digits.load_split(split, data.data_dir)
    if data.name == "webdataset":
        return webdataset_source.WebDatasetSource(_pick(data, "shards", "eval_shards", split))
    if data.name == "csv":
        return csv_source.CsvSource(_pick(data, "csv_path", "eval_csv_path", split),
                                    data.csv_image_column, data.csv_caption_column,
                                    data.csv_separator)
    return tfds_source.load_split(data.name, split, os.path.expanduser(data.data_dir or ""))


def process_groups(source, process_count: int):
    """For sharded sources (webdataset), each process's record indices: the records of shards
    p, p + P, p + 2P, ..., so processes read disjoint shards; None for one process or other
    sources (then each process reads its rows of the one global stream)."""
    shards = getattr(source, "shard_of_record", None)
    if shards is None or process_count == 1:
        return None
    shards = np.asarray(shards)
    if shards.max() + 1 < process_count:
        raise ValueError(f"{shards.max() + 1} webdataset shards cannot be split over "
                         f"{process_count} processes: write at least one shard per process")
    return [np.flatnonzero(shards % process_count == p) for p in range(process_count)]


class InMemory:
    """Every record of `source` decoded once; a bad one re-raises its BadRecordError."""

    def __init__(self, source):
        self.stats = dict(getattr(source, "stats", {}))
        self.shard_of_record = getattr(source, "shard_of_record", None)
        self._records = []
        for index in range(len(source)):
            try:
                self._records.append(source[index])
            except decode.BadRecordError as error:
                self._records.append(error)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict:
        record = self._records[index]
        if isinstance(record, decode.BadRecordError):
            raise record
        return record
