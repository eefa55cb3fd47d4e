"""The data a run trains and evaluates on, from the config: sources, transforms, iterators."""
import dataclasses

import jax
import ml_collections
import numpy as np

from contrastive.data import (augment, digits, examples, image_text, pipeline, sources,
                              tokenizer)


def load_source(config: ml_collections.ConfigDict, split: str):
    """Random-access records of one split; digits builds itself into its cache on first use.

    With data.cache_in_memory the split is decoded once into a list (worth it for small data:
    decoding dominates the input pipeline's cost)."""
    source = sources.load_split(config.data, split)
    if config.data.cache_in_memory:
        source = sources.InMemory(source)
    return source


def make_tokenizer(config: ml_collections.ConfigDict):
    """The digits word tokenizer, or a SentencePiece / Hugging Face tokenizer from a path."""
    if config.data.tokenizer == "digits":
        return digits.caption_tokenizer(config.data.max_len)
    return tokenizer.from_setting(config.data.tokenizer, config.data.max_len)


def _image_side(config, source) -> int:
    if config.data.image_size:
        return config.data.image_size
    return int(np.asarray(pipeline.first_good_records(source, 1)[0]["image"]).shape[0])


def make_transform(config: ml_collections.ConfigDict, source, text_tokenizer=None):
    """record, rng -> model input: an image and a caption, or two augmented views."""
    fields = examples.Fields(text=config.data.text_field or "captions/text")
    if config.model.kind == "image_text":
        crop = config.data.train_crop or (
            "center" if config.data.name in sources.FILE_FORMATS else None)
        if crop is None:
            return examples.ImageTextExample(text_tokenizer, config.data.image_size, fields)
        return image_text.make_example(config.data, crop, text_tokenizer, fields)
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
    source_stats: dict  # counts found when the source opened, e.g. empty webdataset shards


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
        process_groups=sources.process_groups(source, jax.process_count()),
    )
    example = pipeline.transform_first_good(source, transform, 0, np.random.default_rng(0))[1]
    example.pop("skipped", None)
    return TrainData(iterator, example, text_tokenizer, len(source),
                     dict(getattr(source, "stats", {})))


def load_labelled_images(config: ml_collections.ConfigDict, split: str, limit: int):
    """(images float32 [N, S, S, C] in [-1, 1], labels int32 [N]): the first `limit` records
    of a split, unaugmented, for evaluation."""
    source = load_source(config, split)
    transform = examples.LabelledImageExample(config.data.image_size)
    rows = [transform(r, None) for r in pipeline.first_good_records(source, limit)]
    return np.stack([r["image"] for r in rows]), np.stack([r["label"] for r in rows])
