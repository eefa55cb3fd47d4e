"""Decoding image-text records from files (webdataset shards, CSV): bytes -> a record dict.

Records look like tfds coco_captions ones, {"image": uint8 [H, W, 3], "captions": {"text":
(caption,)}, "key": str}, so every transform and evaluator reads them unchanged. A record
that cannot be used raises BadRecordError; the pipeline skips it and counts it.

JPEGs (nearly every web image) decode with simplejpeg, libjpeg-turbo straight into a NumPy
array: the same pixels as PIL (which bundles the same library, with the same default IDCT and
upsampling) at about half the CPU time, since PIL adds a mode conversion and a copy. CMYK JPEGs,
what simplejpeg refuses (any damage) and every other format go through PIL.
"""
import io

import numpy as np
import simplejpeg
from PIL import Image

_JPEG_MAGIC = b"\xff\xd8"


class BadRecordError(ValueError):
    """A record that cannot be decoded (corrupt image, missing or empty caption)."""


def decode_image(data: bytes, key: str = "") -> np.ndarray:
    """Encoded image bytes -> uint8 [H, W, 3] RGB. Greyscale, palette, alpha, CMYK and 16-bit
    images are converted (they are valid images); undecodable bytes raise BadRecordError."""
    if not data:
        raise BadRecordError(f"record {key!r}: empty image")
    if data[:2] == _JPEG_MAGIC:
        try:
            height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
            # CMYK/YCCK take PIL's conversion; a bomb takes PIL's DecompressionBombError.
            if (colorspace in ("YCbCr", "RGB", "Gray")
                    and height * width <= 2 * Image.MAX_IMAGE_PIXELS):
                return simplejpeg.decode_jpeg(data, colorspace="RGB")  # strict: damage raises
        except ValueError:
            pass  # damaged: PIL decodes what is recoverable and reports the rest
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit greyscale: keep the top 8 bits (PIL's convert("L") would clip).
                pixels = np.asarray(image).astype(np.int64) >> 8
                pixels = np.clip(pixels, 0, 255).astype(np.uint8)
                return np.repeat(pixels[..., None], 3, axis=-1)
            return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadRecordError(f"record {key!r}: undecodable image ({error})") from None


def decode_caption(data: bytes | str | None, key: str = "") -> str:
    """Caption bytes -> stripped text; None or blank raises BadRecordError."""
    if data is None:
        raise BadRecordError(f"record {key!r}: no caption")
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
    text = text.strip()
    if not text:
        raise BadRecordError(f"record {key!r}: empty caption")
    return text


def make_record(image_bytes: bytes | None, caption, key: str) -> dict:
    if image_bytes is None:
        raise BadRecordError(f"record {key!r}: no image")
    caption = decode_caption(caption, key)  # cheap check first
    return {"image": decode_image(image_bytes, key), "captions": {"text": (caption,)},
            "key": key}
