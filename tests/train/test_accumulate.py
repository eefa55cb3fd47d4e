"""Contrastive gradient accumulation gives the full-batch loss and gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import parallel
from contrastive.train import accumulate, losses, step
from tests.train.helpers import first_batch_and_state, tiny_config

MESH = {"data": 2, "fsdp": 2, "model": 2}


def test_micro_batches_interleave_rows_and_merge_back():
    batch = {"a": jnp.arange(24).reshape(12, 2)}
    micro = accumulate.split_microbatches(batch, 4)
    assert micro["a"].shape == (4, 3, 2)
    np.testing.assert_array_equal(micro["a"][1, :, 0], [2, 10, 18])  # rows 1, 5, 9
    np.testing.assert_array_equal(accumulate.merge_microbatches(micro)["a"], batch["a"])
    with pytest.raises(ValueError, match="does not split into 5"):
        accumulate.split_microbatches(batch, 5)


@pytest.mark.parametrize("loss_name", ["clip", pytest.param("siglip", marks=pytest.mark.slow)])
def test_four_micro_batches_give_the_full_batch_gradient(digits_data_dir, loss_name):
    config = tiny_config(digits_data_dir, loss=loss_name, batch_size=32)
    mesh = parallel.make_mesh(MESH)
    rules = parallel.DEFAULT_RULES
    task, batch, state = first_batch_and_state(config, mesh)
    loss = losses.bind(loss_name, mesh)

    def loss_and_grads(k):
        fn = jax.jit(lambda *a: step.loss_and_grads(task, loss, *a, {}, k))
        with parallel.sharding_context(mesh, rules):
            value, _, grads, _, _ = fn(state.params, state.model_state, batch, state.rng)
        return float(value), jax.tree.map(np.asarray, grads)

    full_loss, full = loss_and_grads(1)
    accumulated_loss, accumulated = loss_and_grads(4)
    assert accumulated_loss == pytest.approx(full_loss, rel=1e-5)
    # Relative to each parameter's largest gradient entry; parameters whose exact gradient
    # is zero (attention key biases: softmax ignores a per-row constant) hold only rounding
    # noise, so the scale has a floor of 1e-3 of the largest entry anywhere.
    floor = 1e-3 * max(np.max(np.abs(g)) for g in jax.tree.leaves(full))
    rel = jax.tree.map(lambda a, b: np.max(np.abs(a - b)) / max(np.max(np.abs(b)), floor),
                       accumulated, full)
    worst = max(jax.tree.leaves(rel))
    print(f"{loss_name}: max relative gradient difference k=4 vs k=1: {worst:.2e}")
    assert worst < 1e-4
    # The scalar parameters get their gradient from the loss directly, and it is not zero.
    assert abs(full["log_scale"]) > 0
    if loss_name == "siglip":
        assert abs(full["bias"]) > 0
