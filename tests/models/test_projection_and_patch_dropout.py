"""The dual encoder's optional MLP projection heads and FLIP's patch dropout in the ViT."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import DualEncoder, text_transformer, vit
from contrastive.models.vit import drop_patches
from tests.models.helpers import apply, init, rng


def _dual(**fields):
    return DualEncoder(
        image_tower=vit("mu", width=32, depth=1, mlp_dim=64, num_heads=4, patch_size=4),
        text_tower=text_transformer("mu", vocab_size=40, max_len=8), embed_dim=16, **fields)


def _batch():
    images = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3))
    tokens = jax.random.randint(jax.random.key(1), (4, 6), 1, 40)
    return images, tokens


def test_mlp_heads_replace_the_linear_projections_and_the_default_is_unchanged():
    images, tokens = _batch()
    linear, mlp = _dual(), _dual(mlp_head_dim=24, head_depth=3)
    v_linear, v_mlp = init(linear, images, tokens), init(mlp, images, tokens)
    assert set(v_linear["params"]["image_head"]) == {"proj"}  # the default: CLIP's one matrix
    assert set(v_mlp["params"]["image_head"]) == {"hidden0", "hidden1", "out"}
    # The towers' parameters are the same draws with or without the MLP heads.
    for tower in ("image_tower", "text_tower"):
        chex.assert_trees_all_equal(v_linear["params"][tower], v_mlp["params"][tower])
    x, y = apply(mlp, v_mlp, images, tokens)
    chex.assert_shape([x, y], (4, 16))
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=1), 1, atol=1e-6)
    # By hand: relu layers then the output layer, on the tower's features, then unit rows.
    p = jax.tree.map(lambda a: getattr(a, "value", a), v_mlp["params"]["image_head"],
                     is_leaf=lambda a: hasattr(a, "value"))
    feats = apply(mlp.image_tower, {"params": v_mlp["params"]["image_tower"]}, images)
    h = feats
    for i in range(2):
        h = jax.nn.relu(h @ p[f"hidden{i}"]["kernel"] + p[f"hidden{i}"]["bias"])
    out = h @ p["out"]["kernel"] + p["out"]["bias"]
    np.testing.assert_allclose(x, out / jnp.linalg.norm(out, axis=1, keepdims=True), atol=1e-5)


def test_drop_patches_keeps_a_random_ordered_subset_and_the_class_token():
    x = jnp.arange(2 * 9 * 1, dtype=jnp.float32).reshape(2, 9, 1)  # token 0: the class token
    out = drop_patches(x, 0.75, jax.random.key(3), num_prefix=1)
    assert out.shape == (2, 3, 1)  # 1 + round(8 * 0.25)
    for b in range(2):
        kept = np.asarray(out[b, :, 0])
        assert kept[0] == x[b, 0, 0]
        assert np.all(np.diff(kept) > 0) and set(kept[1:]) <= set(np.asarray(x[b, 1:, 0]))
    assert not np.array_equal(out[0, 1:, 0], out[1, 1:, 0] - 9)  # each example its own draw
    assert drop_patches(x, 0.0, jax.random.key(3)).shape == x.shape
    assert drop_patches(x, 0.99, jax.random.key(3)).shape == (2, 1, 1)  # at least one patch


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_patch_dropout_acts_in_training_only(pool):
    images = jax.random.uniform(jax.random.key(0), (3, 8, 8, 3))
    plain = vit("mu/2", pool=pool)
    masked = vit("mu/2", pool=pool, patch_dropout=0.5)
    variables = init(plain, images)
    # Evaluation (train=False) ignores the rate: identical to the plain tower.
    np.testing.assert_array_equal(apply(masked, variables, images), apply(plain, variables, images))
    train = lambda seed: apply(masked, variables, images, train=True, rngs={"dropout": rng(seed)})
    a, b = train(1), train(2)
    assert a.shape == (3, 32) and not np.allclose(a, b)
    np.testing.assert_array_equal(a, train(1))  # the same key drops the same patches


def test_patch_dropout_one_is_an_error():
    images = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="patch_dropout must be in"):
        init(vit("mu/2", patch_dropout=1.0), images)
