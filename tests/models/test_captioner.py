"""CoCa's captioning decoder: causal, reads the image, its cross-entropy, and caption_weight 0
leaves the dual encoder as it was."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import digits_clip, digits_coca
from contrastive import models, parallel
from contrastive.losses import reference
from contrastive import task as task_lib
from contrastive.train import losses, step
from tests.models.helpers import apply, init, rng

V, L, T = 11, 6, 5  # vocabulary, caption length, image tokens


@pytest.fixture(scope="module")
def decoder():
    model = models.Captioner(width=16, depth=2, mlp_dim=32, num_heads=2, vocab_size=V,
                             max_len=L)
    image = jax.random.normal(rng(1), (2, T, 8))
    tokens = jax.random.randint(rng(2), (2, L), 1, V)
    return model, init(model, image, tokens), image, tokens


def test_logits_before_a_changed_token_do_not_change(decoder):
    model, variables, image, tokens = decoder
    t = 3
    changed = tokens.at[:, t].set((tokens[:, t] % (V - 1)) + 1)  # another non-pad token
    before = np.asarray(apply(model, variables, image, tokens))
    after = np.asarray(apply(model, variables, image, changed))
    assert before.shape == (2, L, V)
    # logits[:, s] reads tokens[:, :s]: positions 0..t do not see token t, t+1.. do.
    np.testing.assert_array_equal(before[:, : t + 1], after[:, : t + 1])
    assert np.all(np.max(np.abs(before[:, t + 1:] - after[:, t + 1:]), axis=-1) > 1e-6)


def test_the_image_changes_every_position(decoder):
    model, variables, image, tokens = decoder
    before = np.asarray(apply(model, variables, image, tokens))
    after = np.asarray(apply(model, variables, jax.random.normal(rng(4), image.shape), tokens))
    assert np.all(np.max(np.abs(before - after), axis=-1) > 1e-6)


def test_caption_cross_entropy_is_the_mean_over_non_padding_tokens():
    logits = np.random.default_rng(0).normal(size=(3, 4, 5)) * 3
    tokens = np.array([[3, 1, 2, 0], [4, 2, 0, 0], [0, 0, 0, 0]])
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    expected = [np.mean([-log_p[i, t, tokens[i, t]] for t in range(4) if tokens[i, t]])
                for i in range(2)] + [0.0]  # an all-padding row contributes nothing
    got = models.caption_cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(tokens), 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _batch(n=4):
    r = np.random.default_rng(0)
    tokens = r.integers(3, 40, (n, 16)).astype(np.int32)
    tokens[:, 7:] = 0
    tokens[:, 6] = 2
    return {"image": jnp.asarray(r.normal(size=(n, 8, 8, 1)), jnp.float32),
            "tokens": jnp.asarray(tokens), "label": jnp.zeros((n,), jnp.int32)}


def _tiny(config, caption_weight=None):
    tower = {"width": 16, "mlp_dim": 32, "num_heads": 2, "depth": 1}
    config.model.image_options = config.model.text_options = tower
    config.model.embed_dim = 16
    config.model.captioner = tower
    if caption_weight is not None:
        config.model.caption_weight = caption_weight
    return task_lib.make_task(config, 40)


def _params(task, batch):
    return nn.meta.unbox(init(task.model, *task.inputs(batch)))["params"]


def _loss_and_grads(task, params, batch, k=1):
    loss = losses.bind("clip", parallel.make_mesh({"data": 1}, jax.devices()[:1]))
    return jax.jit(lambda p: step.loss_and_grads(task, loss, p, {}, batch,
                                                 jax.random.PRNGKey(0), {}, k))(params)


def test_caption_weight_zero_is_the_dual_encoder_of_digits_clip():
    task = _tiny(digits_coca.get_config(), caption_weight=0.0)
    clip_task = _tiny(digits_clip.get_config())
    assert task.model.captioner is None
    batch = _batch()
    params = _params(task, batch)
    clip_params = jax.eval_shape(lambda: _params(clip_task, batch))
    shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
    assert shapes(params) == shapes(clip_params)
    value, (_, terms), *_ = _loss_and_grads(task, params, batch)
    (x, y), _ = jax.jit(lambda p: task.embed(p, {}, batch))(params)
    scale, bias = task.scale_and_bias(params)
    assert terms == {}
    dense = reference.clip_loss_dense(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                      float(scale))
    np.testing.assert_allclose(value, dense, rtol=1e-5)


@pytest.mark.slow  # ~6 s: a gradient compile (the default run checks the sum in the trainer)
def test_the_objective_adds_the_weighted_caption_loss():
    task = _tiny(digits_coca.get_config(), caption_weight=2.0)
    batch = _batch()
    params = _params(task, batch)
    value, (_, terms), full_grads, _, _ = _loss_and_grads(task, params, batch)
    logits = apply(task.model, {"params": params}, *task.inputs(batch))[2]
    ce = float(np.mean(np.asarray(models.caption_cross_entropy(logits, batch["tokens"], 0))))
    assert float(terms["caption_loss"]) == pytest.approx(float(ce), rel=1e-5)
    assert float(value) == pytest.approx(float(terms["contrastive_loss"]) + 2.0 * ce, rel=1e-5)
    assert float(jnp.max(jnp.abs(full_grads["captioner"]["token_embed"]["embedding"]))) > 0


@pytest.mark.slow  # ~8 s: two gradient compiles
def test_accumulated_micro_batches_give_the_full_captioning_gradient():
    """GradCache: two micro-batches, the captioning term replayed with the contrastive one."""
    task = _tiny(digits_coca.get_config(), caption_weight=2.0)
    batch = _batch()
    params = _params(task, batch)
    value, (_, terms), full_grads, _, _ = _loss_and_grads(task, params, batch)
    accumulated, (_, acc_terms), acc_grads, _, _ = _loss_and_grads(task, params, batch, 2)
    assert float(accumulated) == pytest.approx(float(value), rel=1e-5)
    assert float(acc_terms["caption_loss"]) == pytest.approx(float(terms["caption_loss"]),
                                                             rel=1e-5)
    floor = 1e-3 * max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(full_grads))
    rel = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))) / max(
        float(jnp.max(jnp.abs(b))), floor), acc_grads, full_grads)
    assert max(jax.tree.leaves(rel)) < 1e-4


def test_the_vit_exposes_its_patch_tokens_beside_the_same_pooled_output():
    vit = models.vit("mu/2", width=16, mlp_dim=32)
    images = jax.random.normal(rng(3), (2, 8, 8, 1))
    variables = init(vit, images)
    pooled, tokens = apply(vit, variables, images, method="pooled_and_tokens")
    np.testing.assert_array_equal(pooled, apply(vit, variables, images))
    assert tokens.shape == (2, 16, 16)  # 4 x 4 patches, no class token


def test_captioner_options_are_checked_before_jax():
    config = digits_coca.get_config()
    config.model.captioner = {"width": 64, "depth": 0, "mlp_dim": 128, "num_heads": 2}
    with pytest.raises(ValueError, match="model.captioner.depth"):
        task_lib.make_task(config, 40)
    config.model.captioner = {"width": 64, "depth": 1, "mlp_dim": 128, "heads": 2}
    with pytest.raises(ValueError, match="unknown fields"):
        task_lib.make_task(config, 40)
    config = digits_coca.get_config()
    config.model.image_tower, config.model.image_variant = "resnet", "18"
    config.model.image_options = {}
    with pytest.raises(ValueError, match="needs image_tower 'vit'"):
        task_lib.make_task(config, 40)
