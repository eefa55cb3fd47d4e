"""Parameter counts of the named sizes against published figures (shapes only, via eval_shape).

Reference figures and the adjustments between them and our towers:
- timm `vit_*_patch16_224` counts include a 1000-class head (D * 1000 + 1000 params);
- OpenCLIP's model profile (image_params / text_params) and CLIP's towers include the projection
  to the joint space, which lives in our heads; CLIP's ViT also has an extra LayerNorm (ln_pre)
  and no bias in its patch embedding;
- torchvision ResNets include a 1000-class fc layer (C * 1000 + 1000 params).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from contrastive.models import resnet, text_transformer, vit


def count_params(model, *example_inputs):
    shapes = jax.eval_shape(model.init, jax.random.key(0), *example_inputs)
    return sum(x.size for x in jax.tree.leaves(nn.meta.unbox(shapes["params"])))


def images(size):
    return jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)


def head(width, classes=1000):
    return width * classes + classes


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Ti/16", 5_717_416 - head(192)),  # timm vit_tiny_patch16_224
        ("S/16", 22_050_664 - head(384)),  # timm vit_small_patch16_224
        ("B/16", 86_567_656 - head(768)),  # timm vit_base_patch16_224: "ViT-B 86M"
    ],
)
def test_vit_matches_timm(name, expected):
    assert count_params(vit(name), images(224)) == expected


def test_vit_l14_matches_clip_image_tower():
    # OpenCLIP ViT-L-14 image tower: 303,966,208 = ours - patch bias + ln_pre + projection.
    width = 1024
    clip = 303_966_208
    assert count_params(vit("L/14"), images(224)) == clip - 768 * width - 2 * width + width


def test_so400m_matches_published_size():
    # SigLIP So400m/14 at 384 px with the MAP head: 428M params (Alabdulmohsin et al. 2023).
    count = count_params(vit("So400m/14", pool="map"), images(384))
    assert abs(count - 428e6) < 0.5e6, count


@pytest.mark.parametrize(
    "name, open_clip_millions, projection",
    [
        ("B", 63.43, 512 * 512),  # CLIP paper: "a 63M-parameter 12-layer 512-wide model"
        ("L", 123.65, 768 * 768),
        ("H", 354.03, 1024 * 1024),
    ],
)
def test_text_matches_clip_text_towers(name, open_clip_millions, projection):
    tokens = jax.ShapeDtypeStruct((1, 77), jnp.int32)
    count = count_params(text_transformer(name), tokens) + projection
    assert abs(count / 1e6 - open_clip_millions) < 0.005, count


@pytest.mark.parametrize(
    "name, torchvision, final_channels",
    [("18", 11_689_512, 512), ("50", 25_557_032, 2048)],
)
def test_resnet_matches_torchvision(name, torchvision, final_channels):
    assert count_params(resnet(name, num_classes=1000), images(224)) == torchvision
    assert count_params(resnet(name), images(224)) == torchvision - head(final_channels)


def test_unknown_size_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown ViT size 'X'.*B.*L"):
        vit("X/16")
    with pytest.raises(ValueError, match="unknown text size 'Q'.*B, L, H"):
        text_transformer("Q")
    with pytest.raises(ValueError, match="unknown ResNet size '19'.*18.*50"):
        resnet("19")
