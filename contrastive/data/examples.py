"""Record -> model input, one example at a time: `transform(record, rng) -> dict of arrays`.

A record is what a tfds source returns (images uint8 [H, W, C], text bytes, labels int). The
rng is the example's own generator (the pipeline seeds it from the seed and the example's
position), so the caption choice and the augmentation are reproducible.

Outputs (per example; the pipeline stacks them and adds "mask" and the record "index"):
  ImageTextExample       {"image": float32 [S, S, C], "tokens": int32 [L], "label": int32 []}
  TwoViewExample         {"view1": float32 [S, S, C], "view2": ..., ("view3": ...,) "label": []}
  LabelledImageExample   {"image": float32 [S, S, C], "label": int32 []}
Images are normalised to [-1, 1] (`image.normalize`); a missing label is -1.
"""
import dataclasses
from typing import Any

import numpy as np

from contrastive.data import augment as augment_lib
from contrastive.data import image as image_ops


@dataclasses.dataclass(frozen=True)
class Fields:
    """Where a dataset keeps its image, text and label; "/" walks nested features.

    The defaults fit tfds' coco_captions and the digits default ("captions/text" is a list of
    captions) and cifar10/imagenet2012 ("label"). For one caption per image use e.g. "caption".
    """

    image: str = "image"
    text: str = "captions/text"
    label: str = "label"


def _lookup(record: dict, path: str) -> Any:
    value = record
    for key in path.split("/"):
        value = value[key]
    return value


def _label(record: dict, fields: Fields) -> np.ndarray:
    try:
        return np.int32(_lookup(record, fields.label))
    except KeyError:
        return np.int32(-1)


def pick_caption(record: dict, fields: Fields, rng: np.random.Generator) -> str:
    """One caption: drawn uniformly by rng when the record holds several."""
    text = _lookup(record, fields.text)
    if not isinstance(text, (str, bytes)):
        captions = list(text)
        if not captions:
            raise ValueError(f"Record has no caption under '{fields.text}'.")
        text = captions[rng.integers(len(captions))]
    return text.decode("utf-8") if isinstance(text, bytes) else text


def _fixed_size(image: np.ndarray, size: int | None) -> np.ndarray:
    return image_ops.center_crop_resize(image, size) if size else image_ops.to_unit_float(image)


@dataclasses.dataclass(frozen=True)
class ImageTextExample:
    """Image (centre crop to image_size; None keeps the stored size) and one tokenized caption."""

    tokenizer: Any  # Anything with encode(str) -> int32 [max_len].
    image_size: int | None = None
    fields: Fields = Fields()

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        image = _fixed_size(record[self.fields.image], self.image_size)
        return {
            "image": image_ops.normalize(image),
            "tokens": self.tokenizer.encode(pick_caption(record, self.fields, rng)),
            "label": _label(record, self.fields),
        }


@dataclasses.dataclass(frozen=True)
class TwoViewExample:
    """`num_views` augmented views of one image for siamese (SimCLR; V > 2: multi-view)
    training, drawn one after the other from the example's rng (so two views are the same
    numbers as `augment.two_views`). With `small_augment` (SwAV's multi-crop), views 3..V are
    drawn by it instead: crops of a smaller area, at the same output size."""

    augment: augment_lib.SimCLRAugment
    fields: Fields = Fields()
    num_views: int = 2
    small_augment: augment_lib.SimCLRAugment | None = None

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        image = record[self.fields.image]
        small = self.small_augment or self.augment
        draw = lambda v: (self.augment if v < 2 else small)(image, rng)
        views = {f"view{v + 1}": image_ops.normalize(draw(v)) for v in range(self.num_views)}
        return {**views, "label": _label(record, self.fields)}


@dataclasses.dataclass(frozen=True)
class LabelledImageExample:
    """Image and class label, for evaluation (linear probe, kNN, zero-shot); no augmentation."""

    image_size: int | None = None
    fields: Fields = Fields()

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        del rng  # Deterministic.
        image = _fixed_size(record[self.fields.image], self.image_size)
        return {"image": image_ops.normalize(image), "label": _label(record, self.fields)}
