import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from contrastive.models import (
    DualEncoder, LinearHead, MLPHead, SiameseEncoder, l2_normalize, resnet, text_transformer, vit,
)
from tests.models.helpers import apply, init


def dual_encoder():
    return DualEncoder(
        image_tower=vit("mu", width=32, depth=1, mlp_dim=64, num_heads=4, patch_size=4),
        text_tower=text_transformer("mu", vocab_size=40, max_len=8),
        embed_dim=16,
    )


def batch():
    images = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3))
    tokens = jax.random.randint(jax.random.key(1), (4, 6), 1, 40)
    return images, tokens


def test_l2_normalize():
    x = jnp.array([[3.0, 4.0], [0.0, 0.0]], jnp.bfloat16)
    y = l2_normalize(x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]])


def test_heads_shapes():
    x = jnp.ones((5, 12))
    linear = LinearHead(7)
    chex.assert_shape(apply(linear, init(linear, x), x), (5, 7))
    for head in [MLPHead(24, 7), MLPHead(24, 7, depth=3), MLPHead(24, 7, batch_norm=False)]:
        variables = init(head, x)
        out, _ = apply(head, variables, x, train=True, mutable=["batch_stats"])
        chex.assert_shape(out, (5, 7))


def test_mlp_head_layers():
    head = MLPHead(24, 7, depth=3)
    params = init(head, jnp.ones((5, 12)))["params"]
    assert sorted(params) == ["bn0", "bn1", "hidden0", "hidden1", "out"]


def test_dual_encoder_outputs_unit_rows_and_initial_scale_bias():
    model = dual_encoder()
    images, tokens = batch()
    variables = init(model, images, tokens)
    x, y = apply(model, variables, images, tokens)
    chex.assert_shape([x, y], (4, 16))
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1, atol=1e-6)
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), 1, atol=1e-6)
    np.testing.assert_allclose(apply(model, variables, images, method="embed_images"), x)
    np.testing.assert_allclose(apply(model, variables, tokens, method="embed_texts"), y)
    np.testing.assert_allclose(jnp.exp(variables["params"]["log_scale"].value), 1 / 0.07,
                               rtol=1e-6)
    assert float(variables["params"]["bias"].value) == -10.0
    np.testing.assert_allclose(variables["params"]["log_scale"].value, math.log(1 / 0.07))
    assert sorted(variables["params"]) == [
        "bias", "image_head", "image_tower", "log_scale", "text_head", "text_tower",
    ]


def test_scale_gets_the_gradient_of_a_contrastive_loss():
    model = dual_encoder()
    images, tokens = batch()
    variables = init(model, images, tokens)

    def loss(params):
        v = {**variables, "params": params}
        x, y = apply(model, v, images, tokens)
        logits = jnp.exp(params["log_scale"].value) * x @ y.T
        return -jnp.mean(jnp.diag(jax.nn.log_softmax(logits, axis=1)))

    grads = jax.grad(loss)(variables["params"])
    assert abs(float(grads["log_scale"].value)) > 0
    assert float(grads["bias"].value) == 0  # this loss does not use the bias


def test_siamese_encoder_embeds_both_views_with_one_tower():
    model = SiameseEncoder(resnet("18", width=8, small_inputs=True), MLPHead(32, 16))
    view1 = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3))
    view2 = jax.random.uniform(jax.random.key(1), (4, 8, 8, 3))
    variables = init(model, view1, view2)
    z1, z2 = apply(model, variables, view1, view2)
    chex.assert_shape([z1, z2], (4, 16))
    np.testing.assert_allclose(jnp.linalg.norm(z1, axis=-1), 1, atol=1e-6)
    np.testing.assert_allclose(z1, apply(model, variables, view1, method="embed"), atol=1e-6)
    np.testing.assert_allclose(z2, apply(model, variables, view2, method="embed"), atol=1e-6)
    chex.assert_shape(apply(model, variables, view1, method="features"), (4, 64))
    # In training, batch norm normalises over both views together (2B rows).
    (t1, t2), _ = apply(model, variables, view1, view2, train=True, mutable=["batch_stats"])
    (s2, s1), _ = apply(model, variables, view2, view1, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(t1, s1, atol=1e-5)
    np.testing.assert_allclose(t2, s2, atol=1e-5)
