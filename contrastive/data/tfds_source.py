"""Real datasets: a named tfds dataset and split, read from a user's data_dir with no download.

The dataset is opened from its prepared files (features.json, dataset_info.json and the
array_record shards), not from its builder code, so it needs neither TensorFlow nor the code
that once downloaded it. Random access (array_record) is what makes exact resume cheap.
"""
import os

import tensorflow_datasets as tfds
from tensorflow_datasets.core import read_only_builder


class DatasetUnavailableError(FileNotFoundError):
    """The dataset is not prepared (as array_record) in the given data_dir."""


def _how_to_prepare(name: str, data_dir: str, problem: str) -> str:
    base_name = name.split("/")[0].split(":")[0]
    return (
        f"{problem}\n"
        f"Prepare '{name}' once, on a machine with internet access, as array_record files in "
        f"{data_dir} (or copy a prepared {data_dir}/{base_name} directory there):\n"
        f"  tfds build {name} --data_dir={data_dir} --file_format=array_record\n"
        f"or in Python:\n"
        f"  tfds.builder('{name}', data_dir='{data_dir}')"
        f".download_and_prepare(file_format='array_record')\n"
        "Datasets with a manual download (e.g. imagenet2012) also need --manual_dir."
    )


def load_builder(name: str, data_dir: str | os.PathLike) -> tfds.core.DatasetBuilder:
    """The prepared dataset `name` ("coco_captions", "cifar10", "imagenet2012:5.1.0",
    "coco_captions/2017") in data_dir; DatasetUnavailableError if it is not there."""
    data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    if not os.path.isdir(data_dir):
        raise DatasetUnavailableError(
            _how_to_prepare(name, data_dir, f"The data_dir {data_dir} does not exist.")
        )
    try:
        builder = read_only_builder.builder_from_files(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as error:
        raise DatasetUnavailableError(
            _how_to_prepare(name, data_dir, f"No prepared dataset '{name}' in {data_dir}.")
        ) from error
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        raise DatasetUnavailableError(
            _how_to_prepare(
                name,
                data_dir,
                f"'{name}' in {builder.data_dir} is stored as {builder.info.file_format.value}; "
                "random access needs array_record.",
            )
        )
    return builder


def load_split(name: str, split: str, data_dir: str | os.PathLike):
    """A random-access source (len, getitem -> decoded record dict) for one split.

    `split` may use tfds slicing ("train[:90%]"). Images come back as uint8 [H, W, C], text as
    bytes, class labels as ints.
    """
    builder = load_builder(name, data_dir)
    base_split = split.split("[")[0]
    if base_split not in builder.info.splits:
        raise ValueError(
            f"Dataset '{name}' in {builder.data_dir} has no split '{base_split}'; "
            f"it has {sorted(builder.info.splits)}."
        )
    return builder.as_data_source(split)
