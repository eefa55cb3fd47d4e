"""SimCLR's augmentations in NumPy: random resized crop, flip, colour jitter, grayscale, blur.

Every function takes an explicit `np.random.Generator`, so a view is a pure function of the
image and the generator's seed; the pipeline seeds it from (seed, position in the stream).
Images are float32 [H, W, C] in [0, 1] and stay there (each colour op clips). One-channel
images skip the colour-only steps (saturation, hue, grayscale).
"""
import dataclasses
import math

import numpy as np

from contrastive.data import image as image_ops

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# RGB <-> YIQ: hue is a rotation of the (I, Q) chroma plane.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def sample_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> tuple[float, float, float, float]:
    """(top, left, h, w) covering a random area fraction in `scale` with aspect in `ratio`
    (log-uniform); the whole image if no attempt fits. Scalar maths in Python floats (a
    NumPy scalar op costs a microsecond): the draws are rng.uniform's, low + (high - low) u."""
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        target_area = area * (scale[0] + (scale[1] - scale[0]) * rng.random())
        aspect = math.exp(log_low + (log_high - log_low) * rng.random())
        crop_w = math.sqrt(target_area * aspect)
        crop_h = math.sqrt(target_area / aspect)
        if crop_w <= width and crop_h <= height:
            top = (height - crop_h) * rng.random()
            left = (width - crop_w) * rng.random()
            return (top, left, crop_h, crop_w)
    return (0.0, 0.0, float(height), float(width))


def random_resized_crop(image, rng, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    box = sample_crop_box(image.shape[0], image.shape[1], rng, scale, ratio)
    return image_ops.crop_and_resize(image, box, (size, size))


def random_flip(image, rng, probability: float = 0.5):
    return image[:, ::-1] if rng.uniform() < probability else image


def grayscale(image):
    """Luma replicated over the channels (a no-op for one channel)."""
    if image.shape[-1] != 3:
        return image
    return np.repeat(image @ _LUMA, 3).reshape(image.shape)


def _luma(image):
    return image @ _LUMA if image.shape[-1] == 3 else image[..., 0]


def adjust_brightness(image, factor):
    return np.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image, factor):
    mean = _luma(image).mean()
    return np.clip((image - mean) * factor + mean, 0.0, 1.0)


def adjust_saturation(image, factor):
    if image.shape[-1] != 3:
        return image
    gray = _luma(image)[..., None]
    return np.clip((image - gray) * factor + gray, 0.0, 1.0)


def adjust_hue(image, shift):
    """Rotates hue by `shift` turns (a fraction of the colour circle) in YIQ space."""
    if image.shape[-1] != 3:
        return image
    angle = 2.0 * np.pi * shift
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[1, 0, 0], [0, cos, -sin], [0, sin, cos]], np.float32)
    matrix = _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ
    return np.clip(image @ matrix.T, 0.0, 1.0).astype(np.float32)


def color_jitter(image, rng, strength: float = 1.0):
    """SimCLR's jitter: brightness, contrast, saturation (0.8 s) and hue (0.2 s), random order."""
    steps = [
        lambda x: adjust_brightness(x, rng.uniform(1 - 0.8 * strength, 1 + 0.8 * strength)),
        lambda x: adjust_contrast(x, rng.uniform(1 - 0.8 * strength, 1 + 0.8 * strength)),
        lambda x: adjust_saturation(x, rng.uniform(1 - 0.8 * strength, 1 + 0.8 * strength)),
        lambda x: adjust_hue(x, rng.uniform(-0.2 * strength, 0.2 * strength)),
    ]
    for index in rng.permutation(len(steps)):
        image = steps[index](image)
    return image.astype(np.float32)


def gaussian_blur(image, sigma: float, kernel_size: int):
    """Separable Gaussian blur with reflect padding; kernel_size is made odd."""
    radius = max(kernel_size // 2, 1)
    offsets = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(image, pad, mode="reflect" if image.shape[axis] > radius else "edge")
        length = image.shape[axis]
        image = sum(
            weight * np.take(padded, np.arange(i, i + length), axis=axis)
            for i, weight in enumerate(kernel)
        )
    return image.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SimCLRAugment:
    """SimCLR's view distribution (Chen et al. 2020, appendix A); ImageNet defaults.

    For small images (CIFAR, digits) use a smaller jitter and blur_probability=0, as the paper
    does for CIFAR-10.
    """

    size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_probability: float = 0.5
    jitter_strength: float = 1.0
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2
    blur_probability: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1  # Kernel side as a fraction of the image side.

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One view: float32 [size, size, C] in [0, 1]."""
        view = random_resized_crop(
            image_ops.to_unit_float(image), rng, self.size, self.crop_scale, self.crop_ratio
        )
        view = random_flip(view, rng, self.flip_probability)
        if rng.uniform() < self.jitter_probability:
            view = color_jitter(view, rng, self.jitter_strength)
        if rng.uniform() < self.grayscale_probability:
            view = grayscale(view)
        if rng.uniform() < self.blur_probability:
            kernel_size = max(3, int(self.blur_kernel_fraction * self.size))
            view = gaussian_blur(view, rng.uniform(*self.blur_sigma), kernel_size)
        return np.ascontiguousarray(view, dtype=np.float32)

    def two_views(self, image: np.ndarray, rng: np.random.Generator):
        """Two independent views of one image, for siamese (SimCLR) training."""
        return self(image, rng), self(image, rng)
