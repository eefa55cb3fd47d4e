import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from contrastive.models import DualEncoder, MLPHead, SiameseEncoder, resnet, text_transformer, vit
from contrastive.parallel import (
    batch_sharding, batch_shards, make_mesh, param_shardings, sharding_context, with_overrides,
)
from tests.models.helpers import rng

MIXED = {"data": 2, "fsdp": 2, "model": 2}


def dual_encoder(num_heads=4):
    return DualEncoder(
        image_tower=vit("mu", width=32, depth=1, mlp_dim=64, num_heads=num_heads, patch_size=4),
        text_tower=text_transformer("mu", width=32, num_heads=4, mlp_dim=64, vocab_size=48,
                                    max_len=8),
        embed_dim=16,
    )


def dual_inputs(batch=8):
    return jnp.zeros((batch, 8, 8, 3)), jnp.zeros((batch, 8), jnp.int32)


def leaf(tree, path):
    for key in path.split("/"):
        tree = tree[key]
    return tree


# (path, spec the rules give, local shard shape on the 2 x 2 x 2 mesh)
DUAL_LAYOUT = [
    ("image_tower/patch_embed/kernel", P(None, None, None, "fsdp"), (4, 4, 3, 16)),
    ("image_tower/posemb", P(None, None, "fsdp"), (1, 5, 16)),
    ("image_tower/encoder/block0/attn/query_kernel", P("fsdp", "model", None), (16, 2, 8)),
    ("image_tower/encoder/block0/attn/out_kernel", P("model", None, "fsdp"), (2, 8, 16)),
    ("image_tower/encoder/block0/mlp/fc1/kernel", P("fsdp", "model"), (16, 32)),
    ("image_tower/encoder/block0/mlp/fc1/bias", P("model"), (32,)),
    ("image_tower/encoder/block0/mlp/fc2/kernel", P("model", "fsdp"), (32, 16)),
    ("image_tower/encoder/final_norm/scale", P("fsdp"), (16,)),
    ("text_tower/token_embed/embedding", P("model", "fsdp"), (24, 16)),
    ("text_tower/posemb", P(None, "fsdp"), (8, 16)),
    ("image_head/proj/kernel", P("fsdp", None), (16, 16)),
    ("log_scale", P(), ()),
    ("bias", P(), ()),
]


def test_sharded_init_lays_out_params_as_the_rules_say_and_matches_plain_init():
    """Abstract first, then one jitted init straight into the shardings (as train.state)."""
    mesh = make_mesh(MIXED)
    model = dual_encoder()
    # The default (threefry) key: its bits do not depend on how the output is sharded.
    key = jax.random.key(0)
    with sharding_context(mesh):
        shardings = param_shardings(jax.eval_shape(model.init, key, *dual_inputs()), mesh)
        variables = jax.jit(lambda k: nn.meta.unbox(model.init(k, *dual_inputs())),
                            out_shardings=shardings)(key)
    params = variables["params"]
    for path, spec, shard_shape in DUAL_LAYOUT:
        x = leaf(params, path)
        assert x.sharding.spec == spec, path
        assert leaf(shardings["params"], path).spec == spec, path
        assert {s.data.shape for s in x.addressable_shards} == {shard_shape}, path
        assert len(x.addressable_shards) == 8
    # Every leaf is laid out as the returned shardings say.
    for x, sharding in zip(jax.tree.leaves(variables), jax.tree.leaves(shardings)):
        assert x.sharding.is_equivalent_to(sharding, x.ndim)
    plain = nn.meta.unbox(jax.jit(model.init)(key, *dual_inputs()))
    chex.assert_trees_all_equal(jax.device_get(variables), jax.device_get(plain))


def test_resnet_and_mlp_head_layout_with_replicated_batch_stats():
    mesh = make_mesh(MIXED)
    model = SiameseEncoder(resnet("18", width=8, small_inputs=True), MLPHead(32, 16))
    views = jnp.zeros((8, 8, 8, 3))
    abstract = jax.eval_shape(model.init, rng(), views, views)
    shardings = param_shardings(abstract, mesh)
    params, stats = shardings["params"], shardings["batch_stats"]
    assert leaf(params, "encoder/stem_conv/kernel").spec == P(None, None, None, "model")
    assert leaf(params, "encoder/stage1_block0/conv1/kernel").spec == P(None, None, "fsdp", "model")
    assert leaf(params, "encoder/stage1_block0/bn1/scale").spec == P("model")
    assert leaf(params, "head/hidden0/kernel").spec == P("fsdp", "model")
    assert leaf(params, "head/out/kernel").spec == P("model", None)
    # Running statistics carry no names: replicated.
    assert leaf(stats, "encoder/stage1_block0/bn1/mean").spec == P()
    assert leaf(stats, "head/bn0/var").spec == P()


def test_overrides_change_the_layout_and_nothing_else():
    mesh = make_mesh(MIXED)
    abstract = jax.eval_shape(dual_encoder().init, rng(), *dual_inputs())
    shardings = param_shardings(abstract, mesh, with_overrides({"embed": None}))["params"]
    assert leaf(shardings, "image_tower/encoder/block0/mlp/fc1/kernel").spec == P(None, "model")
    assert leaf(shardings, "text_tower/token_embed/embedding").spec == P("model", None)


def test_data_parallel_replicates_every_param():
    mesh = make_mesh({"data": 8})
    abstract = jax.eval_shape(dual_encoder().init, rng(), *dual_inputs())
    shardings = param_shardings(abstract, mesh)
    for x, sharding in zip(jax.tree.leaves(nn.meta.unbox(abstract)), jax.tree.leaves(shardings)):
        assert sharding.shard_shape(x.shape) == x.shape


def test_indivisible_param_is_a_clear_error():
    # Two heads cannot be split over a 4-way "model" axis.
    mesh = make_mesh({"data": 2, "model": 4})
    abstract = jax.eval_shape(dual_encoder(num_heads=2).init, rng(), *dual_inputs())
    with pytest.raises(ValueError) as error:
        param_shardings(abstract, mesh)
    message = str(error.value)
    assert (
        "params/image_tower/encoder/block0/attn/query_kernel: dimension 1 (logical axis 'heads') "
        "has size 2, not divisible by mesh axis 'model' of size 4" in message
    )
    assert "attn/out_kernel: dimension 0 (logical axis 'heads') has size 2" in message
    assert "text_tower" not in message  # the text tower has 4 heads: fine


def test_indivisible_width_under_fsdp_names_the_axis_product():
    mesh = make_mesh({"fsdp": 8})
    model = vit("mu", width=36, num_heads=4, mlp_dim=64, patch_size=4)
    abstract = jax.eval_shape(model.init, rng(), jnp.zeros((8, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"params/cls: dimension 2 \(logical axis 'embed'\) has "
                                         r"size 36, not divisible by mesh axis 'fsdp' of size 8"):
        param_shardings(abstract, mesh)


def test_unknown_logical_name_is_a_clear_error():
    class Typo(nn.Module):
        @nn.compact
        def __call__(self, x):
            init = nn.with_logical_partitioning(nn.initializers.ones_init(), ("embd", "mlp"))
            return x @ self.param("w", init, (x.shape[-1], 8))

    abstract = jax.eval_shape(Typo().init, rng(), jnp.zeros((2, 8)))
    with pytest.raises(ValueError, match=r"params/w uses logical axes \['embd'\] that the rules "
                                         r"do not name"):
        param_shardings(abstract, make_mesh({"data": 8}))


def test_batch_sharding_splits_rows_over_data_and_fsdp():
    mesh = make_mesh({"data": 2, "fsdp": 2, "model": 2})
    assert batch_sharding(mesh).spec == P(("data", "fsdp"))
    assert batch_shards(mesh) == 4 and batch_shards(make_mesh({"model": 8})) == 1
    images = np.arange(8 * 3 * 2, dtype=np.float32).reshape(8, 3, 2)
    batch = jax.device_put(images, batch_sharding(mesh))
    assert {s.data.shape for s in batch.addressable_shards} == {(2, 3, 2)}
    np.testing.assert_array_equal(batch, images)


def test_activation_constraints_are_live_only_inside_the_sharding_context():
    mesh = make_mesh(MIXED)
    model = vit("mu", width=32, num_heads=4, mlp_dim=128, patch_size=4)
    images = jnp.zeros((8, 8, 8, 3))
    variables = jax.jit(model.init)(rng(), images)
    outside = jax.jit(model.apply).lower(variables, images).as_text()
    with sharding_context(mesh):
        inside = jax.jit(model.apply).lower(variables, images).as_text()
    assert "sharding_constraint" not in outside
    # Tokens (B=8, 4 patches + cls, D=32): batch over data x fsdp, features whole; the MLP
    # hidden layer (F=128) and the heads (H=4, K=8) split over "model".
    for layout in [
        r'\[\{"data", "fsdp"\}, \{\}, \{\}\]> : tensor<8x5x32xf32>',
        r'\[\{"data", "fsdp"\}, \{\}, \{"model"\}\]> : tensor<8x5x128xf32>',
        r'\[\{"data", "fsdp"\}, \{\}, \{"model"\}, \{\}\]> : tensor<8x5x4x8xf32>',
        r'\[\{"data", "fsdp"\}, \{\}\]> : tensor<8x32xf32>',
    ]:
        assert re.search(r"sharding_constraint .*" + layout, inside), layout
