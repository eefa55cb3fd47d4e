"""SimCLR augmentations: determinism by seed, value ranges, and what each operation does."""
import numpy as np
import pytest

from contrastive.data import augment, image


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_views_deterministic_by_seed_and_in_range(channels):
    picture = np.random.default_rng(1).integers(0, 256, (32, 32, channels), dtype=np.uint8)
    augmenter = augment.SimCLRAugment(size=24)
    first = augmenter.two_views(picture, np.random.default_rng(5))
    again = augmenter.two_views(picture, np.random.default_rng(5))
    other = augmenter.two_views(picture, np.random.default_rng(6))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], first[1])
    for view in first + other:
        assert view.shape == (24, 24, channels) and view.dtype == np.float32
        assert view.min() >= 0.0 and view.max() <= 1.0


def test_many_views_stay_in_unit_range(rgb):
    augmenter = augment.SimCLRAugment(size=16, jitter_probability=1.0, blur_probability=1.0)
    views = np.stack([augmenter(rgb, np.random.default_rng(s)) for s in range(50)])
    assert views.min() >= 0.0 and views.max() <= 1.0
    assert views.std() > 0.05  # Not collapsed to a constant.


def test_crop_and_resize_full_box_is_identity(rgb):
    unit = image.to_unit_float(rgb)
    np.testing.assert_allclose(image.crop_and_resize(unit, (0, 0, 40, 56), (40, 56)), unit)


def test_crop_and_resize_picks_the_box(rgb):
    unit = image.to_unit_float(rgb)
    np.testing.assert_allclose(image.crop_and_resize(unit, (8, 10, 4, 6), (4, 6)), unit[8:12, 10:16])
    # Halving a region averages 2x2 blocks when sampling at pixel centres.
    halved = image.crop_and_resize(unit, (0, 0, 4, 4), (2, 2))
    np.testing.assert_allclose(halved, unit[:4, :4].reshape(2, 2, 2, 2, 3).mean(axis=(1, 3)), atol=1e-6)


def test_center_crop_resize(rgb):
    out = image.center_crop_resize(rgb, 20)
    assert out.shape == (20, 20, 3)
    np.testing.assert_allclose(
        image.center_crop_resize(rgb, 40), image.to_unit_float(rgb)[:, 8:48], atol=1e-6
    )


def test_normalize_range():
    np.testing.assert_allclose(image.normalize(np.array([0.0, 0.5, 1.0])), [-1.0, 0.0, 1.0])


def test_crop_boxes_respect_scale_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, height, width = augment.sample_crop_box(30, 50, rng, scale=(0.2, 0.6))
        assert 0 <= top and top + height <= 30 + 1e-9 and 0 <= left and left + width <= 50 + 1e-9
        assert 0.2 - 1e-9 <= height * width / 1500 <= 0.6 + 1e-9
        assert 3 / 4 - 1e-9 <= width / height <= 4 / 3 + 1e-9


def _numpy_crop_box(height, width, rng, scale, ratio=(3 / 4, 4 / 3), attempts=10):
    """The sampler written with NumPy's own uniform draws and scalar maths (the reference)."""
    for _ in range(attempts):
        target_area = height * width * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        crop_w, crop_h = np.sqrt(target_area * aspect), np.sqrt(target_area / aspect)
        if crop_w <= width and crop_h <= height:
            return (rng.uniform(0, height - crop_h), rng.uniform(0, width - crop_w), crop_h, crop_w)
    return (0.0, 0.0, float(height), float(width))


@pytest.mark.parametrize("height, width, scale", [(256, 256, (0.9, 1.0)), (320, 480, (0.9, 1.0)),
                                                  (30, 50, (0.2, 0.6)), (8, 8, (0.05, 1.0))])
def test_crop_boxes_are_numpys_draws(height, width, scale):
    # The same boxes from the same stream, and the stream left where NumPy's draws leave it.
    for seed in range(300):
        ours, reference = np.random.default_rng(seed), np.random.default_rng(seed)
        np.testing.assert_allclose(augment.sample_crop_box(height, width, ours, scale),
                                   _numpy_crop_box(height, width, reference, scale), rtol=1e-12)
        assert ours.random() == reference.random()


def test_flip_mirrors(rgb):
    unit = image.to_unit_float(rgb)
    np.testing.assert_array_equal(augment.random_flip(unit, np.random.default_rng(0), 1.0), unit[:, ::-1])
    np.testing.assert_array_equal(augment.random_flip(unit, np.random.default_rng(0), 0.0), unit)


def test_grayscale_equalises_channels(rgb):
    gray = augment.grayscale(image.to_unit_float(rgb))
    np.testing.assert_allclose(gray[..., 0], gray[..., 1])
    np.testing.assert_allclose(gray[..., 1], gray[..., 2])
    single = image.to_unit_float(rgb[..., :1])
    np.testing.assert_array_equal(augment.grayscale(single), single)


def test_colour_adjustments(rgb):
    unit = image.to_unit_float(rgb)
    np.testing.assert_allclose(augment.adjust_hue(unit, 0.0), unit, atol=1e-5)
    np.testing.assert_allclose(augment.adjust_hue(unit, 1.0), unit, atol=1e-5)
    assert np.abs(augment.adjust_hue(unit, 0.25) - unit).max() > 0.1
    np.testing.assert_allclose(augment.adjust_saturation(unit, 0.0), augment.grayscale(unit), atol=1e-6)
    flat = augment.adjust_contrast(unit, 0.0)
    np.testing.assert_allclose(flat, np.full_like(unit, flat.flat[0]), atol=1e-6)
    assert augment.adjust_brightness(unit, 2.0).max() <= 1.0


def test_blur_keeps_constants_and_smooths_noise(rgb):
    constant = np.full((12, 12, 3), 0.3, np.float32)
    np.testing.assert_allclose(augment.gaussian_blur(constant, 1.5, 5), constant, atol=1e-6)
    noise = image.to_unit_float(rgb)
    blurred = augment.gaussian_blur(noise, 1.5, 7)
    assert blurred.shape == noise.shape
    assert blurred.std() < 0.5 * noise.std()
    assert abs(blurred.mean() - noise.mean()) < 0.01
