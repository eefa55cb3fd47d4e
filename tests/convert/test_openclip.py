"""OpenCLIP parity: tiny random CLIP models built and run by open_clip itself
(tools/make_pretrained_fixtures.py) give the same embeddings through our DualEncoder."""
import json
import types
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import convert

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ["openclip_vit_quickgelu", "openclip_vit_gelu"]


def _load(name):
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    sd = convert.load_state_dict(FIXTURES / f"{name}.safetensors")
    return meta, sd, dict(np.load(FIXTURES / f"{name}.npz"))


def _features(model, params, images, tokens):
    """Unnormalised projected features, as OpenCLIP's encode_image / encode_text return, and
    the public path's unit rows (as the losses see them), fed the pixels as our host sends
    them, (p - 0.5) / 0.5, which the model renormalises to OpenAI's statistics."""
    mean, std = np.asarray(model.pixel_mean), np.asarray(model.pixel_std)
    host = ((np.asarray(images) * std + mean) - 0.5) / 0.5

    def run(m, images, host, tokens):
        raw = (m.image_head(m.image_tower(images)), m.text_head(m.text_tower(tokens)))
        return raw, m(host, tokens)
    return jax.jit(lambda p, i, h, t: model.apply({"params": p}, i, h, t, method=run))(
        params, images, jnp.asarray(host, jnp.float32), tokens)


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    meta, sd, data = _load(request.param)
    model = convert.openclip_model(sd, quick_gelu=meta["quick_gelu"],
                                   vision_heads=meta["vision_heads"], text_heads=meta["text_heads"])
    return meta, sd, data, model, convert.from_openclip(sd, model)


def test_embeddings_match_open_clip(case):
    meta, _, data, model, params = case
    images = jnp.asarray(data["images"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
    (x, y), (ux, uy) = _features(model, params, images, jnp.asarray(data["tokens"], jnp.int32))
    np.testing.assert_allclose(x, data["image_features"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(y, data["text_features"], atol=1e-5, rtol=1e-5)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
    np.testing.assert_allclose(ux, unit(data["image_features"]), atol=1e-5)
    np.testing.assert_allclose(uy, unit(data["text_features"]), atol=1e-5)
    assert meta["library"] == "open_clip"


def test_the_wrong_activation_does_not_match():
    """The parity is sensitive: QuickGELU and GELU towers differ beyond the tolerance."""
    meta, sd, data = _load(NAMES[1])
    heads = dict(vision_heads=meta["vision_heads"], text_heads=meta["text_heads"])
    params = convert.from_openclip(sd, convert.openclip_model(sd, quick_gelu=meta["quick_gelu"],
                                                              **heads))
    other = convert.openclip_model(sd, quick_gelu=not meta["quick_gelu"], **heads)
    images = jnp.asarray(data["images"].transpose(0, 2, 3, 1))
    (x, _), _ = _features(other, params, images, jnp.asarray(data["tokens"], jnp.int32))
    assert np.max(np.abs(np.asarray(x) - data["image_features"])) > 1e-3


def test_export_round_trips_bit_exactly(case):
    _, sd, _, model, params = case
    back = convert.to_openclip(params)
    assert set(back) == set(sd) - {"attn_mask"}
    for key, value in sd.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    again = convert.from_openclip(back, model)
    jax.tree.map(np.testing.assert_array_equal, again, params)


def test_our_init_fits_the_converted_tree(case):
    """from_openclip gives exactly the tree (names, shapes, dtypes) our model initialises."""
    _, _, data, model, params = case
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, *data["images"].shape[2:], 3)),
                            jnp.zeros((1, data["tokens"].shape[1]), jnp.int32))["params"]
    expected = jax.tree.map(lambda s: (s.shape, s.dtype), nn.meta.unbox(shapes))
    assert jax.tree.map(lambda a: (a.shape, a.dtype), params) == expected


@pytest.mark.slow
def test_scanned_towers_take_the_same_weights():
    meta, sd, data = _load(NAMES[0])
    kw = dict(quick_gelu=True, vision_heads=meta["vision_heads"], text_heads=meta["text_heads"])
    model = convert.openclip_model(sd, scan=True, **kw)
    params = convert.from_openclip(sd, model)
    images = jnp.asarray(data["images"].transpose(0, 2, 3, 1))
    (x, y), _ = _features(model, params, images, jnp.asarray(data["tokens"], jnp.int32))
    np.testing.assert_allclose(x, data["image_features"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(y, data["text_features"], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(convert.to_openclip(params)["transformer.resblocks.1.ln_1.bias"],
                                  sd["transformer.resblocks.1.ln_1.bias"])


def test_files_round_trip_and_torch_checkpoints_read_without_torch(tmp_path):
    _, sd, _ = _load(NAMES[1])
    convert.save_state_dict(sd, tmp_path / "m.safetensors")
    np.savez(tmp_path / "m.npz", **sd)
    # torch.save's zip, as an OpenCLIP training checkpoint ({"state_dict": {"module."...}}).
    for path in (tmp_path / "m.safetensors", tmp_path / "m.npz", FIXTURES / "openclip_vit_gelu.pt"):
        back = convert.load_state_dict(path)
        assert set(back) == set(sd), path
        for key in sd:
            assert back[key].dtype == sd[key].dtype and np.array_equal(back[key], sd[key]), key
    with pytest.raises(ValueError, match="read .safetensors"):
        convert.load_state_dict(tmp_path / "model.ckpt")


def test_a_torch_checkpoint_cannot_run_code(tmp_path):
    """The restricted unpickler builds tensors and dicts only: a pickled call is refused."""
    import pickle
    import zipfile

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    with zipfile.ZipFile(tmp_path / "evil.bin", "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": Payload()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing .*print"):
        convert.load_state_dict(tmp_path / "evil.bin")


def test_the_openclip_config_builds_open_clips_vit_b32():
    """configs/openclip.py's model has exactly the parameter shapes of open_clip's ViT-B-32
    (its state dict's shapes, written by open_clip) as `openclip_model` reads them."""
    from configs import openclip as openclip_config
    from contrastive import task as task_lib

    shapes = json.loads((FIXTURES / "openclip_ViT-B-32_shapes.json").read_text())
    sd = {k: types.SimpleNamespace(shape=tuple(v)) for k, v in shapes.items()}
    reference = convert.openclip_model(sd, quick_gelu=False)
    config = openclip_config.get_config("model=ViT-B-32,pretrained=x.safetensors")
    model = task_lib.make_task(config, vocab_size=49_408).model
    inputs = (jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32),
              jax.ShapeDtypeStruct((1, 77), jnp.int32))
    tree = lambda m: jax.tree.map(lambda s: s.shape, nn.meta.unbox(
        jax.eval_shape(m.init, jax.random.PRNGKey(0), *inputs)["params"]))
    assert tree(model) == tree(reference)
    for field in ("act", "norm_eps", "pre_norm", "patch_bias", "num_heads", "pool"):
        assert getattr(model.image_tower, field) == getattr(reference.image_tower, field)
    for field in ("act", "norm_eps", "mask_padding", "causal", "num_heads", "pool", "max_len"):
        assert getattr(model.text_tower, field) == getattr(reference.text_tower, field)
    assert model.pixel_mean == reference.pixel_mean and model.embed_dim == 512
