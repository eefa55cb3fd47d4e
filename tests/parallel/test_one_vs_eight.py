"""The same computation on one device and on 8 (fake CPU) devices agrees to float32 rounding.

Parameters are laid out by the default rules on each mesh, inputs split over (data, fsdp), and
the models' activation constraints are active; only the order of floating-point reductions may
differ from the single-device run. Run with -s to see the max abs differences.
"""
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import DualEncoder, resnet, text_transformer, vit
from contrastive.parallel import batch_sharding, make_mesh, param_shardings, sharding_context
from tests.models.helpers import rng

MESHES = {
    "data": {"data": 8},
    "fsdp": {"fsdp": 8},
    "data+fsdp": {"data": 2, "fsdp": 4},
    "tensor": {"data": 2, "model": 4},
    "mixed": {"data": 2, "fsdp": 2, "model": 2},
}
BATCH = 16
# float32 rounding through a few layers: |diff| <= ATOL + RTOL |expected| (gradients reach ~30).
ATOL, RTOL = 2e-5, 1e-5


def tiny_vit(**fields):
    return vit("mu", width=32, depth=2, mlp_dim=64, num_heads=4, patch_size=2, **fields)


def tiny_text(**fields):
    return text_transformer("mu", width=32, depth=2, mlp_dim=64, num_heads=4, vocab_size=64,
                            max_len=12, **fields)


def images(seed=0):
    return np.asarray(jax.random.uniform(jax.random.key(seed), (BATCH, 8, 8, 3)))


def tokens(seed=1):
    ids = np.asarray(jax.random.randint(jax.random.key(seed), (BATCH, 12), 1, 64))
    lengths = np.arange(BATCH) % 12 + 1  # rows of every length, padded with 0
    return np.where(np.arange(12) < lengths[:, None], ids, 0).astype(np.int32)


def clip_loss_grads(model):
    """Gradients of a CLIP-style loss: every row's loss depends on the whole batch."""

    def run(variables, images, tokens):
        def loss(params):
            v = {**variables, "params": params}
            x, y = model.apply(v, images, tokens)
            logits = jnp.exp(nn.meta.unbox(params["log_scale"])) * x @ y.T
            labels = jnp.arange(x.shape[0])
            return -jnp.mean(jax.nn.log_softmax(logits)[labels, labels])

        return jax.value_and_grad(loss)(variables["params"])

    return run


def dual_encoder():
    return DualEncoder(tiny_vit(), tiny_text(), embed_dim=16)


# name -> (model, inputs, function of (model) -> f(variables, *inputs))
CASES = {
    "vit-map": (tiny_vit(pool="map", posemb="sincos2d"), (images(),),
                lambda m: m.apply),
    "text-causal": (tiny_text(), (tokens(),), lambda m: m.apply),
    # Train mode: batch statistics over the global batch, and their running averages.
    "resnet-train": (resnet("18", width=8, small_inputs=True), (images(),),
                     lambda m: functools.partial(m.apply, train=True, mutable=["batch_stats"])),
    "dual": (dual_encoder(), (images(), tokens()), lambda m: m.apply),
    "dual-loss-grads": (dual_encoder(), (images(), tokens()), clip_loss_grads),
}


@pytest.fixture(scope="module")
def single_device():
    """Per case: the model's variables and its outputs, computed on one device without a mesh."""
    results = {}

    def get(case):
        if case not in results:
            model, inputs, fn = CASES[case]
            variables = jax.jit(model.init)(rng(), *inputs)
            results[case] = variables, jax.jit(fn(model))(variables, *inputs)
        return results[case]

    return get


def max_diffs(got, expected):
    """(max |got - expected|, max |expected|) over all leaves."""
    pairs = list(zip(jax.tree.leaves(got), jax.tree.leaves(expected)))
    return (max(float(jnp.max(jnp.abs(x - y))) for x, y in pairs),
            max(float(jnp.max(jnp.abs(y))) for _, y in pairs))


# The loss gradients' slowest layouts (their data and mixed meshes stay in the default run).
SLOW = {("dual-loss-grads", m) for m in ("fsdp", "tensor", "data+fsdp")}
PAIRS = [pytest.param(c, m, id=f"{c}-{m}", marks=[pytest.mark.slow] if (c, m) in SLOW else [])
         for m in MESHES for c in CASES]


@pytest.mark.parametrize("case,mesh_name", PAIRS)
def test_eight_devices_match_one(case, mesh_name, single_device):
    model, inputs, fn = CASES[case]
    variables, expected = single_device(case)
    mesh = make_mesh(MESHES[mesh_name])
    abstract = jax.eval_shape(model.init, rng(), *inputs)
    sharded_variables = jax.device_put(variables, param_shardings(abstract, mesh))
    sharded_inputs = jax.device_put(inputs, batch_sharding(mesh))
    with sharding_context(mesh):
        got = jax.jit(fn(model))(sharded_variables, *sharded_inputs)

    # The computation really ran on the mesh: outputs live on all 8 devices.
    assert all(len(x.sharding.device_set) == 8 for x in jax.tree.leaves(got))
    diff, magnitude = max_diffs(got, expected)
    print(f"\n{case:>15} on {mesh_name:<9} {str(MESHES[mesh_name]):<36} max |1 - 8 devices| = "
          f"{diff:.1e}, max |value| = {magnitude:.1f}")
    chex.assert_trees_all_close(jax.device_get(got), jax.device_get(expected), atol=ATOL,
                                rtol=RTOL)
