"""Image-text augmentation for web data: random-resized crop (OpenCLIP's, area (0.9, 1.0)),
big_vision's inception crop (area (0.05, 1.0)) or resize-and-centre-crop, optional flip.

Images stay uint8 on the host ("uint8": the model normalises on the device, saving 4x the
host->device bytes of float32) or become normalised bfloat16 ("bfloat16").

Resampling is OpenCV's, the fastest on a CPU core (about 7x PIL's bilinear here): the crop box
is rounded to whole pixels, as torchvision's RandomResizedCrop samples it, and resized
bilinearly with half-pixel centres (PIL's and jax.image's convention). Bilinear does not
filter, so a crop more than twice the output side is first reduced by the whole factor
k = floor(side / size) with a k x k box average (exact and fast), then resized: no aliasing.
"""
import dataclasses
from typing import Any

import cv2
import ml_dtypes
import numpy as np

from contrastive.data import augment as augment_lib
from contrastive.data import examples
from contrastive.data import image as image_ops

CROPS = {"center": None, "random_resized": (0.9, 1.0), "inception": (0.05, 1.0)}
IMAGE_DTYPES = ("uint8", "bfloat16")


@dataclasses.dataclass(frozen=True)
class ImageTextAugment:
    """uint8 [H, W, C] -> uint8 [size, size, C]; crop in CROPS, scale None: the crop's own."""

    size: int
    crop: str = "center"
    scale: tuple[float, float] | None = None
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_probability: float = 0.0

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(f"image crop must be one of {sorted(CROPS)}, got {self.crop!r}")

    def box(self, height: int, width: int, rng) -> tuple[float, float, float, float]:
        if self.crop == "center":
            return image_ops.center_square_box(height, width)
        scale = tuple(self.scale or CROPS[self.crop])
        return augment_lib.sample_crop_box(height, width, rng, scale, tuple(self.ratio))

    def __call__(self, image: np.ndarray, rng) -> np.ndarray:
        image = np.asarray(image, np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        top, left, h, w = whole_pixels(self.box(image.shape[0], image.shape[1], rng),
                                       *image.shape[:2])
        out = resize(image[top:top + h, left:left + w], self.size)
        if self.flip_probability and rng.uniform() < self.flip_probability:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


def whole_pixels(box, height: int, width: int) -> tuple[int, int, int, int]:
    """A (top, left, h, w) box rounded to whole pixels inside a height x width image."""
    top, left, h, w = box
    h, w = min(max(round(h), 1), height), min(max(round(w), 1), width)
    return min(round(top), height - h), min(round(left), width - w), h, w


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [h, w, C] -> [size, size, C]: box-average by floor(min(h, w) / size) if >= 2,
    then bilinear (half-pixel centres, edges clamped)."""
    h, w, channels = image.shape
    factor = min(h, w) // size
    if factor >= 2:  # the exact-integer INTER_AREA path: a factor x factor mean per pixel
        h, w = h // factor * factor, w // factor * factor
        image = cv2.resize(image[:h, :w], (w // factor, h // factor),
                           interpolation=cv2.INTER_AREA)
    out = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return out.reshape(size, size, channels)  # OpenCV drops a single channel axis


def to_model_dtype(image: np.ndarray, dtype: str) -> np.ndarray:
    """uint8 as is, or normalised to [-1, 1] as bfloat16."""
    if dtype == "uint8":
        return image
    if dtype == "bfloat16":
        return image_ops.normalize(image_ops.to_unit_float(image)).astype(ml_dtypes.bfloat16)
    raise ValueError(f"data.image_dtype must be one of {IMAGE_DTYPES}, got {dtype!r}")


@dataclasses.dataclass(frozen=True)
class AugmentedImageTextExample:
    """{"image": uint8 or bf16 [S, S, C], "tokens": int32 [L], "label": int32 []}."""

    tokenizer: Any
    augment: ImageTextAugment
    fields: examples.Fields = examples.Fields()
    image_dtype: str = "uint8"

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        image = self.augment(record[self.fields.image], rng)
        return {
            "image": to_model_dtype(image, self.image_dtype),
            "tokens": self.tokenizer.encode(examples.pick_caption(record, self.fields, rng)),
            "label": examples._label(record, self.fields),  # pylint: disable=protected-access
        }


def make_example(data, crop: str, tokenizer, fields) -> AugmentedImageTextExample:
    """The training transform from the config's data section (data.image_size required)."""
    if not data.image_size:
        raise ValueError(f"data.train_crop={crop!r} needs config.data.image_size")
    scale = tuple(data.train_crop_scale) if data.train_crop_scale else None
    augment = ImageTextAugment(data.image_size, crop, scale,
                               flip_probability=data.flip_probability)
    return AugmentedImageTextExample(tokenizer, augment, fields, data.image_dtype)
