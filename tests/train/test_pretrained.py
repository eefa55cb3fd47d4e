"""Step-0 weights from a file: the chosen towers take the file's weights exactly (a timm ViT
image tower through contrastive.convert, our own flat names), the others keep their init;
a mismatched architecture is a one-line error."""
import types
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import convert
from contrastive import task as task_lib
from contrastive.train import pretrained, state as state_lib
from tests.train.helpers import tiny_config

TIMM = Path(__file__).parents[1] / "convert" / "fixtures" / "timm_vit.safetensors"


@pytest.fixture(scope="module")
def built():
    """The task, a stand-in step-0 state (params only) and single-device shardings; the image
    tower shaped like the timm fixture (tools/make_pretrained_fixtures.py)."""
    config = tiny_config("unused", batch_size=8, data__max_len=8)
    config.model.image_variant = "mu/8"
    config.model.image_options = dict(width=32, depth=2, mlp_dim=128, num_heads=2, act="gelu")
    task = task_lib.make_task(config, 64)
    # Shapes only, filled with 1s (no init compile): the loader reads shapes and dtypes.
    shapes = jax.eval_shape(task.model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                            jnp.ones((1, 8), jnp.int32))
    params = jax.tree.map(lambda s: np.ones(s.shape, s.dtype), nn.meta.unbox(shapes)["params"])
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    state = state_lib.TrainState(step=0, params=params, model_state={}, opt_state=(),
                                 rng=jax.random.PRNGKey(0))
    shardings = types.SimpleNamespace(params=jax.tree.map(lambda _: device, params))
    return config, task, shardings, state


def _equal(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(np.asarray(x),
                                                                        np.asarray(y)), a, b)))


def test_a_timm_image_tower_is_loaded_and_the_rest_kept(built):
    config, task, shardings, state = built
    config = config.copy_and_resolve_references()
    config.model.update(pretrained=str(TIMM), pretrained_format="timm",
                        pretrained_towers=("image",))
    with pytest.raises(ValueError, match="image_head"):  # a timm file holds no head
        pretrained.load_pretrained(state, config.model, task, shardings)
    config.model.pretrained_towers = ("image_tower",)
    loaded = pretrained.load_pretrained(state, config.model, task, shardings)
    sd = convert.load_state_dict(TIMM)
    assert _equal(loaded.params["image_tower"], convert.from_timm(sd, task.model.image_tower))
    assert _equal(loaded.params["image_head"], state.params["image_head"])
    config.model.pretrained_towers = ("vision",)
    with pytest.raises(ValueError, match="pretrained_towers: 'vision'"):
        pretrained.load_pretrained(state, config.model, task, shardings)


def test_flat_weights_replace_the_chosen_towers_only(built, tmp_path):
    config, task, shardings, state = built
    config = config.copy_and_resolve_references()
    sd = convert.load_state_dict(TIMM)
    image = convert.from_timm(sd, task.model.image_tower)
    flat = {**convert.flatten({"image_tower": image}),
            "image_head/proj/kernel": np.full((32, 32), 0.5, np.float32)}
    convert.save_state_dict(flat, tmp_path / "tower.safetensors")
    config.model.update(pretrained=str(tmp_path / "tower.safetensors"), pretrained_format="flat",
                        pretrained_towers=("image",))
    loaded = pretrained.load_pretrained(state, config.model, task, shardings)
    assert _equal(loaded.params["image_tower"], image)
    assert _equal(loaded.params["image_head"]["proj"]["kernel"], flat["image_head/proj/kernel"])
    for name in ("text_tower", "text_head", "log_scale", "bias"):
        assert _equal(loaded.params[name], state.params[name])
    # The same file for a model of another width: one line naming the leaf.
    bad = dict(flat)
    bad["image_head/proj/kernel"] = np.zeros((16, 32), np.float32)
    convert.save_state_dict(bad, tmp_path / "bad.safetensors")
    config.model.pretrained = str(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match=r"image_head/proj/kernel is \(16, 32\)"):
        pretrained.load_pretrained(state, config.model, task, shardings)
