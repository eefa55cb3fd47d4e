"""The data a run trains and evaluates on, from its config: sources, tokenizer, transforms,
the training iterator and the evaluation split."""
import dataclasses
import os

import jax
import ml_collections
import numpy as np

from contrastive.data import augment, digits, examples, pipeline, tfds_source, tokenizer


def load_source(config: ml_collections.ConfigDict, split: str):
    """Random-access records of one split; digits builds itself into its cache on first use.

    With data.cache_in_memory the split is decoded once into a list (worth it for small data:
    decoding dominates the input pipeline's cost)."""
    if config.data.name == "digits":
        source = digits.load_split(split, config.data.data_dir)
    else:
        source = tfds_source.load_split(
            config.data.name, split, os.path.expanduser(config.data.data_dir or "")
        )
    if config.data.cache_in_memory:
        source = [source[i] for i in range(len(source))]
    return source


def make_tokenizer(config: ml_collections.ConfigDict):
    """The digits word tokenizer, or a SentencePiece model from a path."""
    if config.data.tokenizer == "digits":
        return digits.caption_tokenizer(config.data.max_len)
    path = os.path.expanduser(config.data.tokenizer)
    return tokenizer.SentencePieceTokenizer.from_file(path, config.data.max_len)


def _image_side(config, source) -> int:
    if config.data.image_size:
        return config.data.image_size
    return int(np.asarray(source[0]["image"]).shape[0])


def make_transform(config: ml_collections.ConfigDict, source, text_tokenizer=None):
    """record, rng -> model input: an image and a caption, or two augmented views."""
    fields = examples.Fields(text=config.data.text_field or "captions/text")
    if config.model.kind == "image_text":
        return examples.ImageTextExample(text_tokenizer, config.data.image_size, fields)
    views = augment.SimCLRAugment(
        size=_image_side(config, source),
        crop_scale=tuple(config.data.crop_scale),
        jitter_strength=config.data.jitter_strength,
        blur_probability=config.data.blur_probability,
    )
    return examples.TwoViewExample(views, fields)


@dataclasses.dataclass
class TrainData:
    """The training stream and what the model needs to know about it."""

    iterator: pipeline.DataIterator
    example: dict  # one transformed example (shapes and dtypes for the abstract init)
    tokenizer: object | None
    num_examples: int  # records in the training split (the size of per-example state)


def make_train_data(config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding):
    """An endless, shuffled, resumable iterator of global batches on `sharding`."""
    source = load_source(config, config.data.train_split)
    text_tokenizer = make_tokenizer(config) if config.model.kind == "image_text" else None
    transform = make_transform(config, source, text_tokenizer)
    iterator = pipeline.make_iterator(
        source,
        transform,
        global_batch_size=config.batch_size,
        seed=config.seed,
        sharding=sharding,
        num_threads=config.data.num_threads,
        worker_count=config.data.worker_count,
    )
    example = transform(source[0], np.random.default_rng(0))
    return TrainData(iterator, example, text_tokenizer, len(source))


def dataset_class_names(config: ml_collections.ConfigDict) -> list[str]:
    """The dataset's class names in label order ("_" read as a space)."""
    if config.data.name == "digits":
        return list(digits.DIGIT_NAMES)
    builder = tfds_source.load_builder(config.data.name, config.data.data_dir)
    return [n.replace("_", " ") for n in builder.info.features["label"].names]


def _captions(record, path: str) -> list[str] | None:
    value = record
    try:
        for key in path.split("/"):
            value = value[key]
    except (KeyError, TypeError):
        return None
    texts = [value] if isinstance(value, (str, bytes)) else list(value)
    return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]


def load_eval_split(config: ml_collections.ConfigDict, split: str, limit: int,
                    two_views: bool = False) -> dict:
    """{"images", "labels", "captions" (list per image, or None), "views" (N, 2, S, S, C)}: the
    first `limit` records, unaugmented; two_views adds two fixed random views of each."""
    source = load_source(config, split)
    count = min(limit, len(source))
    records = [source[i] for i in range(count)]
    transform = examples.LabelledImageExample(config.data.image_size)
    rows = [transform(r, None) for r in records]
    captions = [_captions(r, config.data.text_field or "captions/text") for r in records]
    out = {"images": np.stack([r["image"] for r in rows]),
           "labels": np.stack([r["label"] for r in rows]),
           "captions": None if any(c is None or not c for c in captions) else captions}
    if two_views:
        views = make_transform(config, source)
        pairs = [views(r, np.random.default_rng([config.seed, i])) for i, r in enumerate(records)]
        out["views"] = np.stack([np.stack([p["view1"], p["view2"]]) for p in pairs])
    return out
