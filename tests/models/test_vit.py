import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import vit
from contrastive.models.transformer import Transformer
from contrastive.models.vit import sincos_2d
from tests.models.helpers import apply, init

TINY = dict(width=32, depth=2, mlp_dim=64, num_heads=4, patch_size=4)


def digits(batch=3, seed=0):
    return jax.random.uniform(jax.random.key(seed), (batch, 8, 8, 3))


@pytest.mark.parametrize("pool", ["cls", "gap", "map"])
@pytest.mark.parametrize("posemb", ["learn", "sincos2d"])
def test_output_shape(pool, posemb):
    model = vit("mu", **TINY, pool=pool, posemb=posemb)
    variables = init(model, digits())
    out = apply(model, variables, digits())
    chex.assert_shape(out, (3, 32))
    chex.assert_tree_all_finite(out)


def test_named_size_with_patch():
    model = vit("S/8", pool="map")
    assert (model.width, model.depth, model.mlp_dim, model.num_heads) == (384, 12, 1536, 6)
    assert (model.patch_size, model.pool) == (8, "map")


def test_learned_posemb_covers_cls_and_patches():
    params = init(vit("mu", **TINY), digits())["params"]
    # 8x8 image, 4x4 patches: 4 patches + the class token.
    chex.assert_shape(nn.meta.unbox(params["posemb"]), (1, 5, 32))


def test_sincos_2d():
    table = sincos_2d(3, 4, 16)
    assert table.shape == (12, 16)
    # position (0, 0): sin 0 = 0 and cos 0 = 1 in each quarter.
    np.testing.assert_allclose(table[0], [0] * 4 + [1] * 4 + [0] * 4 + [1] * 4, atol=1e-7)
    # position (row 1, col 2) is row-major index 6; lowest frequency is 1.
    assert table[6, 0] == pytest.approx(np.sin(2.0)) and table[6, 8] == pytest.approx(np.sin(1.0))
    assert len({tuple(np.round(row, 5)) for row in table}) == 12  # all positions distinct
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(2, 2, 6)


def test_bf16_compute_keeps_float32_params():
    images = digits()
    fp32 = vit("mu", **TINY)
    bf16 = vit("mu", **TINY, dtype=jnp.bfloat16)
    variables = init(fp32, images)
    assert {x.dtype for x in jax.tree.leaves(init(bf16, images))} == {
        jnp.dtype(jnp.float32)
    }
    low = apply(bf16, variables, images)
    assert low.dtype == jnp.bfloat16
    high = apply(fp32, variables, images)
    # bf16 keeps ~3 significant digits; 2 blocks compound a few roundings.
    np.testing.assert_allclose(np.asarray(low, np.float32), high, atol=0.05 * np.abs(high).max())


def test_remat_changes_nothing_but_memory():
    images = digits()
    plain, remat = vit("mu", **TINY), vit("mu", **TINY, remat=True)
    variables = init(plain, images)
    loss = lambda model: lambda v: jnp.sum(apply(model, v, images) ** 2)
    chex.assert_trees_all_close(
        jax.value_and_grad(loss(plain))(variables),
        jax.value_and_grad(loss(remat))(variables),
        atol=1e-6,
    )


def test_causal_mask_hides_the_future():
    model = Transformer(depth=2, mlp_dim=32, num_heads=2)
    x = jax.random.normal(jax.random.key(0), (2, 6, 16))
    mask = nn.make_causal_mask(jnp.ones((2, 6)), dtype=bool)
    variables = init(model, x, mask)
    changed = x.at[:, 4:].set(jax.random.normal(jax.random.key(2), (2, 2, 16)))
    out, out_changed = apply(model, variables, x, mask), apply(model, variables, changed, mask)
    np.testing.assert_allclose(out[:, :4], out_changed[:, :4], atol=1e-6)
    assert np.abs(out[:, 4:] - out_changed[:, 4:]).min() > 1e-4


def test_bad_pool_and_heads_are_errors():
    with pytest.raises(ValueError, match="pool must be"):
        init(vit("mu", **{**TINY, "pool": "max"}), digits())
    with pytest.raises(ValueError, match="width 32 is not divisible by num_heads 3"):
        init(vit("mu", **{**TINY, "num_heads": 3}), digits())
