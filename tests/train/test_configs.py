"""Every config loads, its variants parse, and its model builds (abstractly, no memory)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import (basic, clip, common, digits_clip, digits_siglip, digits_simclr, lit, openclip,
                     siglip, simclr)
from contrastive import task as task_lib
from contrastive.train import state

CONFIGS = {
    "digits_clip": (digits_clip, None), "digits_siglip": (digits_siglip, None),
    "digits_simclr": (digits_simclr, None), "clip": (clip, "vit_b16,batch=65536"),
    "clip_l14": (clip, "vit_l14"), "siglip": (siglip, None), "basic": (basic, "micro=8"),
    "simclr_imagenet": (simclr, "imagenet"), "simclr_cifar10": (simclr, "cifar10"),
    "lit": (lit, "pretrained=/tmp/run"), "openclip": (openclip, "model=ViT-B-16,lock_image"),
}


def test_parse_arg_converts_by_the_default_type():
    args = common.parse_arg("vit_b16,batch=65536,lr=0.5", vit_b16=False, batch=1, lr=1.0)
    assert args.vit_b16 is True and args.batch == 65536 and args.lr == 0.5
    with pytest.raises(ValueError, match="known: \\['a'\\]"):
        common.parse_arg("b=1", a=1)
    with pytest.raises(ValueError, match="needs a value"):
        common.parse_arg("a", a=1)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_builds_its_model_abstractly(name):
    module, arg = CONFIGS[name]
    config = module.get_config(arg)
    assert config.loss in ("clip", "siglip")
    assert config.batch_size % config.num_microbatches == 0
    task = task_lib.make_task(config, vocab_size=100)
    size = config.data.image_size or 8
    if config.model.kind == "image_text":
        inputs = (jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32),
                  jax.ShapeDtypeStruct((2, config.data.max_len), jnp.int32))
    else:
        inputs = (jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32),) * 2
    variables = jax.eval_shape(task.model.init, jax.random.PRNGKey(0), *inputs)
    count = sum(np.prod(x.shape) for x in jax.tree.leaves(variables["params"]))
    assert count > 1000


def test_variants_change_what_they_name():
    assert clip.get_config("vit_b16,batch=65536").batch_size == 65536
    assert clip.get_config("vit_l14").model.image_variant == "L/14"
    assert basic.get_config("micro=8").num_microbatches == 8
    assert siglip.get_config().loss == "siglip"
    assert digits_clip.get_config("runlocal").total_steps < digits_clip.get_config().total_steps


def test_weight_decay_skips_biases_norms_and_scalars():
    params = {"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
              "ln": {"scale": jnp.ones(3)}, "attn": {"query_bias": jnp.ones((2, 3))},
              "log_scale": jnp.ones(()), "token_embed": {"embedding": jnp.ones((5, 3))}}
    mask = state.weight_decay_mask(params)
    assert mask == {"dense": {"kernel": True, "bias": False}, "ln": {"scale": False},
                    "attn": {"query_bias": False}, "log_scale": False,
                    "token_embed": {"embedding": True}}


def test_schedule_warms_up_then_decays_to_the_end_fraction():
    config = digits_clip.get_config().optimizer
    config.warmup_steps, config.learning_rate, config.end_learning_rate_fraction = 10, 1.0, 0.1
    schedule = state.learning_rate_schedule(config, 100)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(100)) == pytest.approx(0.1)
