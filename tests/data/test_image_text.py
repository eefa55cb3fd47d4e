"""Image-text augmentation: crops against slicing and the float32 resampler, flip off by
default, uint8/bf16 outputs, and the model's on-device normalisation of uint8 pixels."""
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from PIL import Image

from contrastive import models
from contrastive.data import image as image_ops
from contrastive.data import image_text


def gradient(height=20, width=30):
    ys, xs = np.mgrid[:height, :width]
    return np.stack([ys * 12 % 256, xs * 8 % 256, (ys + xs) * 4 % 256], -1).astype(np.uint8)


def test_centre_crop_at_the_stored_scale_is_a_slice():
    image = gradient(20, 30)
    out = image_text.ImageTextAugment(20)(image, None)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, image[:, 5:25])


def test_centre_crop_resize_matches_the_float_resampler_when_upscaling():
    image = gradient(20, 30)
    out = image_text.ImageTextAugment(40)(image, None).astype(np.float64)
    reference = image_ops.center_crop_resize(image, 40) * 255.0
    assert np.abs(out - reference)[2:-2, 2:-2].max() <= 1.0  # rounding; edges clamp apiece


def test_downscaling_by_a_whole_factor_is_the_block_mean():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 48, 3), np.uint8)
    out = image_text.resize(image, 12)  # factor 4: the 4 x 4 mean, OpenCV rounds to nearest
    block_mean = image.reshape(12, 4, 12, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(out - block_mean).max() <= 0.5 + 1e-9


def test_downscaling_does_not_alias():
    # A one-pixel checkerboard shrunk 5.5x is flat grey; point-sampled bilinear keeps stripes.
    ys, xs = np.mgrid[:88, :88]
    board = np.repeat((((ys + xs) % 2) * 255).astype(np.uint8)[..., None], 3, -1)
    out = image_text.resize(board, 16).astype(np.float64)
    assert np.abs(out - 127.5).max() < 8


def test_downscaling_a_smooth_image_agrees_with_pil():
    # PIL's antialiased bilinear (an independent resampler) on a smooth image, factors 1.3-3.
    ys, xs = np.mgrid[:96, :120]
    smooth = np.stack([128 + 100 * np.sin(ys / 9.0), 128 + 100 * np.cos(xs / 11.0),
                       np.full(ys.shape, 90.0)], -1).astype(np.uint8)
    for size in (72, 48, 32):
        crop = smooth[:, 12:108]
        expected = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))
        out = image_text.resize(crop, size).astype(np.float64)
        assert np.abs(out - expected)[1:-1, 1:-1].mean() < 1.0, size


def test_one_channel_images_keep_their_channel_axis():
    out = image_text.ImageTextAugment(10, "random_resized")(gradient(20, 30)[..., :1],
                                                            np.random.default_rng(0))
    assert out.shape == (10, 10, 1) and out.dtype == np.uint8


@pytest.mark.parametrize("crop, low, high", [("random_resized", 0.9, 1.0),
                                             ("inception", 0.05, 1.0)])
def test_crop_areas_follow_the_crop_scale(crop, low, high):
    augment = image_text.ImageTextAugment(8, crop)
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(400):
        _, _, h, w = augment.box(100, 100, rng)
        areas.append(h * w / 100 ** 2)
    areas = np.array(areas)
    assert areas.min() >= low - 1e-9 and areas.max() <= high + 1e-9
    assert np.ptp(areas) > 0.5 * (high - low)  # spreads over the range


def test_flip_is_off_by_default_and_mirrors_when_on():
    image = gradient(16, 16)
    plain = image_text.ImageTextAugment(16, "random_resized")
    flipping = image_text.ImageTextAugment(16, "random_resized", flip_probability=1.0)
    a = plain(image, np.random.default_rng(5))
    b = flipping(image, np.random.default_rng(5))
    np.testing.assert_array_equal(b, a[:, ::-1])
    same = [plain(image, np.random.default_rng(s)) for s in range(20)]
    boxes = [plain.box(16, 16, np.random.default_rng(s)) for s in range(20)]
    for out, (top, left, h, w) in zip(same, boxes):  # never mirrored: left column stays left
        assert out[:, 0, 1].mean() <= out[:, -1, 1].mean()


def test_bfloat16_output_is_the_normalised_image():
    image = gradient(8, 8)
    out = image_text.to_model_dtype(image, "bfloat16")
    assert out.dtype == ml_dtypes.bfloat16
    expected = (image.astype(np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(out.astype(np.float32), expected, atol=1e-2)
    with pytest.raises(ValueError, match="image_dtype"):
        image_text.to_model_dtype(image, "float16")


def test_model_normalises_uint8_pixels_as_the_host_does():
    model = models.DualEncoder(
        image_tower=models.vit("mu/2"), text_tower=models.text_transformer("mu", max_len=4,
                                                                           vocab_size=16),
        embed_dim=8)
    pixels = gradient(8, 8)[None]
    host = image_ops.normalize(image_ops.to_unit_float(pixels[0]))[None]
    variables = model.init(jax.random.PRNGKey(0), jnp.asarray(host), jnp.ones((1, 4), jnp.int32))
    from_uint8 = model.apply(variables, jnp.asarray(pixels), method=model.embed_images)
    from_float = model.apply(variables, jnp.asarray(host), method=model.embed_images)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
