"""Image geometry and the fixed pixel normalisation, in NumPy (runs in the input workers).

Images inside the pipeline are float32 [H, W, C] in [0, 1]; `normalize` maps them to the model's
fixed range [-1, 1] as the very last step.
"""
import numpy as np

# Model inputs are (pixel / 255 - 0.5) / 0.5, i.e. in [-1, 1], for every dataset.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, C] (or [H, W]) -> float32 [H, W, C] in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def normalize(image01: np.ndarray) -> np.ndarray:
    """[0, 1] -> the model's input range [-1, 1]."""
    return ((image01 - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)


def crop_and_resize(
    image: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int]
) -> np.ndarray:
    """Bilinear resample of box = (top, left, height, width) (pixels, may be fractional) to size.

    Samples at output pixel centres, so the full-image box at the same size is the identity.
    """
    image = to_unit_float(image)
    top, left, height, width = box
    out_h, out_w = size
    ys = _sample_coordinates(top, height, out_h, image.shape[0])
    xs = _sample_coordinates(left, width, out_w, image.shape[1])
    y0, y1, wy = ys
    x0, x1, wx = xs
    rows = image[y0] * (1.0 - wy)[:, None, None] + image[y1] * wy[:, None, None]
    out = rows[:, x0] * (1.0 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    return out.astype(np.float32)


def _sample_coordinates(start: float, extent: float, count: int, limit: int):
    """Neighbouring source indices and the interpolation weight for each output pixel."""
    coords = start + (np.arange(count) + 0.5) * (extent / count) - 0.5
    coords = np.clip(coords, 0.0, limit - 1)
    lower = np.floor(coords).astype(np.int64)
    upper = np.minimum(lower + 1, limit - 1)
    return lower, upper, (coords - lower).astype(np.float32)


def center_square_box(height: int, width: int) -> tuple[float, float, float, float]:
    """The largest centred square: resize-shorter-side-then-centre-crop as one resample."""
    side = min(height, width)
    return ((height - side) / 2.0, (width - side) / 2.0, float(side), float(side))


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop resized to size x size; float32 [size, size, C] in [0, 1]."""
    image = to_unit_float(image)
    if image.shape[:2] == (size, size):
        return image
    return crop_and_resize(image, center_square_box(*image.shape[:2]), (size, size))
