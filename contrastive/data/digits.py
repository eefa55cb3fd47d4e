"""The embedded default dataset: scikit-learn's handwritten digits with template captions.

1,797 8x8 grayscale images ship inside scikit-learn, so this builds with no download. It is a
real tfds builder, prepared once as array_record into a data_dir and read back like any other
tfds dataset, so the default and real datasets share one pipeline.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from contrastive.data import tokenizer as tokenizer_lib

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# `{name}` is the digit's word ("three"), `{digit}` its numeral ("3").
CAPTION_TEMPLATES = (
    "a photo of the digit {name}",
    "handwritten {digit}",
    "the number {digit} written by hand",
    "a handwritten {name}",
    "a small grayscale picture of a {name}",
    "an 8x8 image of the digit {digit}",
)

HELD_OUT_FRACTION = 0.25
# Fixed forever: changing it would move held-out images into training.
SPLIT_SEED = 20240501
DATA_DIR_ENV = "CONTRASTIVE_DATA_DIR"


def default_data_dir() -> str:
    """Where the default dataset is cached: $CONTRASTIVE_DATA_DIR or ~/.cache/contrastive/tfds."""
    return os.path.expanduser(os.environ.get(DATA_DIR_ENV, "~/.cache/contrastive/tfds"))


def captions_for(label: int) -> list[str]:
    """Every caption template filled in for one digit class."""
    return [t.format(name=DIGIT_NAMES[label], digit=label) for t in CAPTION_TEMPLATES]


def caption_tokenizer(max_len: int = 16) -> tokenizer_lib.WordTokenizer:
    """The word tokenizer for these captions (vocabulary: every word of every template)."""
    captions = [c for label in range(len(DIGIT_NAMES)) for c in captions_for(label)]
    return tokenizer_lib.WordTokenizer.from_texts(captions, max_len)


def held_out_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: (train indices, held-out indices), both sorted.

    Within each class a fixed-seed permutation puts ceil(HELD_OUT_FRACTION * n) images aside.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    held_out = []
    for label in range(len(DIGIT_NAMES)):
        members = np.flatnonzero(labels == label)
        count = int(np.ceil(HELD_OUT_FRACTION * len(members)))
        held_out.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held_out))
    train = np.setdiff1d(np.arange(len(labels)), held_out)
    return train, held_out


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 [N, 8, 8, 1] scaled from 0..16 to 0..255, and int labels [N]."""
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64)


class DigitsCaptions(tfds.core.GeneratorBasedBuilder):
    """scikit-learn digits as image-caption pairs; splits `train` and held-out `test`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        # Built directly (not dataset_info_from_configs): that one wants a metadata package dir.
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn's 8x8 handwritten digits with template captions.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=DIGIT_NAMES),
                # Same structure as coco_captions, so one caption picker serves both.
                "captions": tfds.features.Sequence({"text": tfds.features.Text()}),
                "id": tfds.features.Scalar(dtype=np.int64),
            }),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        images, labels = _sklearn_digits()
        train, held_out = held_out_split(labels)
        return {
            "train": self._generate_examples(images, labels, train),
            "test": self._generate_examples(images, labels, held_out),
        }

    def _generate_examples(self, images, labels, indices):
        import PIL.Image  # pylint: disable=import-outside-toplevel

        for index in indices:
            label = int(labels[index])
            # A PIL image is encoded to PNG by PIL; a numpy array would need TensorFlow.
            yield int(index), {
                "image": PIL.Image.fromarray(images[index, :, :, 0], mode="L"),
                "label": label,
                "captions": {"text": captions_for(label)},
                "id": int(index),
            }


def prepare(data_dir: str | None = None) -> DigitsCaptions:
    """Returns the builder, building the dataset into data_dir first if it is not there yet."""
    builder = DigitsCaptions(data_dir=data_dir or default_data_dir())
    if not builder.is_prepared():
        builder.download_and_prepare(file_format=tfds.core.FileFormat.ARRAY_RECORD)
    return builder


def load_split(split: str, data_dir: str | None = None):
    """A random-access source (len, getitem -> decoded record) for `train` or `test`."""
    return prepare(data_dir).as_data_source(split)
