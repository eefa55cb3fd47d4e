"""The data a run trains and evaluates on, from its config: sources, tokenizer, transforms,
the training iterator and the evaluation split."""
import dataclasses

import jax
import ml_collections
import numpy as np

from contrastive.data import (augment, digits, examples, image_text, pipeline, sources,
                              tfds_source, tokenizer)


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
    small_scale = config.data.get("small_crop_scale")  # SwAV's multi-crop: views 3..V
    small = dataclasses.replace(views, crop_scale=tuple(small_scale)) if small_scale else None
    return examples.TwoViewExample(views, fields, config.model.num_views, small)


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


def dataset_class_names(config: ml_collections.ConfigDict) -> list[str]:
    """The dataset's class names in label order ("_" read as a space)."""
    if config.data.name == "digits":
        return list(digits.DIGIT_NAMES)
    if config.data.name in sources.FILE_FORMATS:
        raise ValueError(f"{config.data.name} data has no class names: set eval.class_names "
                         "(in label order) for zero-shot classification")
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
    records = pipeline.first_good_records(source, limit)
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
