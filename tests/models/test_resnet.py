import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import ResNet, resnet
from tests.models.helpers import apply, init


def images(size=8, batch=4, seed=0):
    return jax.random.uniform(jax.random.key(seed), (batch, size, size, 3))


@pytest.mark.parametrize(
    "stage_sizes, bottleneck, small_inputs, size, channels",
    [
        ((2, 2, 2, 2), False, True, 8, 8 * 8),  # ResNet-18 layout: C_out = 8 width
        ((1, 1), True, True, 8, 2 * 4 * 8),  # bottlenecks: C_out = 4 * 2^(stages-1) width
        ((1, 1), False, False, 32, 2 * 8),  # ImageNet stem: /4 before the stages
    ],
)
def test_output_shape(stage_sizes, bottleneck, small_inputs, size, channels):
    model = ResNet(stage_sizes, bottleneck, width=8, small_inputs=small_inputs)
    variables = init(model, images(size))
    out = apply(model, variables, images(size))
    chex.assert_shape(out, (4, channels))
    chex.assert_tree_all_finite(out)


def test_classifier_gives_logits():
    model = resnet("18", width=8, small_inputs=True, num_classes=10)
    variables = init(model, images())
    chex.assert_shape(apply(model, variables, images()), (4, 10))


def test_train_mode_uses_and_updates_batch_statistics():
    model = resnet("18", width=8, small_inputs=True)
    variables = init(model, images())
    train_out, updates = apply(model, variables, images(), train=True, mutable=["batch_stats"])
    before = variables["batch_stats"]["stem_bn"]["mean"]
    after = updates["batch_stats"]["stem_bn"]["mean"]
    assert np.abs(before).max() == 0 and np.abs(after).max() > 0
    # Batch statistics normalise differently from the initial running averages (0, 1).
    assert np.abs(train_out - apply(model, variables, images())).max() > 1e-3


def test_blocks_start_as_identity_maps():
    # The last BN of each residual branch starts at zero scale, so at init (eval mode) every
    # block is relu(shortcut): a stage of identity blocks leaves its input unchanged.
    model = resnet("18", width=8, small_inputs=True)
    variables = init(model, images())
    _, state = apply(model, variables, images(), capture_intermediates=True)
    stage0 = state["intermediates"]
    first = stage0["stage0_block0"]["__call__"][0]
    second = stage0["stage0_block1"]["__call__"][0]
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_remat_changes_nothing_but_memory():
    plain = resnet("50", stage_sizes=(1, 1), width=8, small_inputs=True)
    remat = resnet("50", stage_sizes=(1, 1), width=8, small_inputs=True, remat=True)
    variables = init(plain, images())

    def loss(model):
        def f(params):
            out, _ = apply(model, {**variables, "params": params}, images(), train=True,
                                 mutable=["batch_stats"])
            return jnp.sum(out**2)
        return f

    chex.assert_trees_all_close(
        jax.value_and_grad(loss(plain))(variables["params"]),
        jax.value_and_grad(loss(remat))(variables["params"]),
        atol=1e-5,
    )
