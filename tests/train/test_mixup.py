"""Metrix embedding mixup: the objective against a NumPy soft-target cross-entropy, the same on
8 devices as on one and with gradient accumulation as without, and its config checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import parallel
from contrastive.errors import UserError
from contrastive.losses.cases import paired, rel_err
from contrastive.train import losses, mixup, step, validate
from tests.train.helpers import first_batch_and_state, tiny_config

ONE = parallel.make_mesh({"data": 1}, devices=jax.devices()[:1])


def _soft_cross_entropy(logits, targets):
    """Mean over rows of -sum_j t_ij log softmax(logits)_ij, in NumPy."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean(np.sum(targets * log_p, axis=1))


@pytest.mark.parametrize("alpha,weight", [(0.4, 1.0), (2.0, 0.5)])
def test_clip_objective_is_the_clean_loss_plus_interpolated_targets(alpha, weight):
    n, scale = 9, 12.0
    x, y = paired(7, n)
    rng = jax.random.PRNGKey(3)
    clip = losses.bind("clip", ONE)
    pair_loss = lambda a, b: clip(a, b, scale, 0.0, None, {})
    with jax.enable_x64(True):
        got, _ = mixup.Mixup(alpha, weight).objective(pair_loss, jnp.asarray(x), jnp.asarray(y),
                                                      rng)
        lam = float(mixup.mixing_weight(rng, alpha))
    assert 0 < lam < 1
    mixed = lam * x + (1 - lam) * np.roll(x, -1, axis=0)
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    eye, after = np.eye(n), np.roll(np.eye(n), 1, axis=1)  # after[i, i + 1] = 1
    clean = 0.5 * (_soft_cross_entropy(scale * x @ y.T, eye)
                   + _soft_cross_entropy(scale * y @ x.T, eye))
    # Anchor i: lam on caption i, 1 - lam on caption i + 1; caption j: lam on anchor j and
    # 1 - lam on anchor j - 1.
    targets = lam * eye + (1 - lam) * after
    logits = scale * mixed @ y.T
    mixed_loss = 0.5 * (_soft_cross_entropy(logits, targets)
                        + _soft_cross_entropy(logits.T, targets.T))
    # The mixed anchors are normalised in float32, as the model's embeddings are.
    np.testing.assert_allclose(got, clean + weight * mixed_loss, rtol=1e-6)


def test_alpha_zero_is_the_clean_loss_and_eight_devices_equal_one():
    x, y = (jnp.float32(a) for a in paired(2, 32))
    rng = jax.random.PRNGKey(0)
    one, eight = losses.bind("siglip", ONE), losses.bind("siglip", parallel.make_mesh(
        {"data": 2, "fsdp": 4}), block_size=2)
    run = lambda bound, mix: jax.jit(lambda a, b: mix.objective(
        lambda p, q: bound(p, q, 10.0, -5.0, None, {}), a, b, rng)[0])(x, y)
    assert run(one, mixup.Mixup()) == run(one, mixup.Mixup(0.0, 3.0))
    assert run(one, mixup.Mixup(1.0)) > run(one, mixup.Mixup())
    assert rel_err(run(eight, mixup.Mixup(1.0)), run(one, mixup.Mixup(1.0))) < 1e-6


@pytest.mark.slow  # ~30 s: three compilations of the tiny model's step
def test_accumulation_sees_the_same_mixed_objective(digits_data_dir):
    """k = 2 micro-batches give the full-batch mixed loss and gradient: mixing happens on the
    whole batch's embeddings, after accumulation's embedding pass."""
    config = tiny_config(digits_data_dir, batch_size=16)
    mesh = parallel.make_mesh({"data": 2, "fsdp": 2, "model": 2})
    rules = parallel.DEFAULT_RULES
    task, batch, state = first_batch_and_state(config, mesh)
    loss = losses.bind("clip", mesh)

    def run(k, mix):
        fn = jax.jit(lambda *a: step.loss_and_grads(task, loss, *a, {}, k, mix))
        with parallel.sharding_context(mesh, rules):
            value, _, grads, _, _ = fn(state.params, state.model_state, batch, state.rng)
        return float(value), np.asarray(grads["log_scale"])

    (clean, _), (full, full_grad), (accumulated, accumulated_grad) = (
        run(1, mixup.Mixup()), run(1, mixup.Mixup(1.0)), run(2, mixup.Mixup(1.0)))
    assert full > clean * 1.2  # the mixed loss is added
    assert accumulated == pytest.approx(full, rel=1e-5)
    assert accumulated_grad == pytest.approx(full_grad, rel=1e-4)


@pytest.mark.parametrize("fields,message", [
    ({"mixup__alpha": -1.0}, r"config.mixup.alpha=-1.0: must be a number >= 0"),
    ({"mixup__alpha": 0.5, "loss": "isogclr"}, r"config.mixup.alpha=0.5: mixup pairs each row "
                                                r"with the next one's targets and mixes "
                                                r"embeddings, which config.loss='isogclr' "
                                                r"cannot follow"),
])
def test_mistakes_are_one_line(fields, message):
    with pytest.raises(UserError, match=message):
        validate.check(tiny_config("/nonexistent", **fields))
