"""Every loss of the zoo against its dense float64 reference: value and every gradient, awkward
N (one row, tiles that do not divide N), extreme temperatures, and bf16 against float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax

from contrastive import losses
from contrastive.losses import isogclr, reference
from contrastive.losses.cases import CASES, NEEDS_TWO, paired, rel_err, value_and_grads


@pytest.mark.parametrize("name", list(CASES))
# One row; 37 rows in tiles of 8 (padding) at the strongest scale; 100 rows in one automatic
# tile at the weakest.
@pytest.mark.parametrize("n,block_size,scale", [(1, None, 10.0), (37, 8, 100.0),
                                                 (100, None, 1.0)])
def test_matches_dense_float64_reference(name, n, block_size, scale):
    case = CASES[name]
    if n == 1 and name in NEEDS_TWO:
        pytest.skip("needs two rows")
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(a) for a in case.inputs(3, n, scale))
        value, grads = value_and_grads(lambda *a: case.blockwise(*a, block_size=block_size),
                                        args, case.diff)
        want, want_grads = value_and_grads(case.dense, args, case.diff)
    assert rel_err(value, want, scale / 100) < 1e-12, (value, want)
    for g, w, floor in zip(grads, want_grads, case.floors(n, scale)):
        assert rel_err(g, w, floor) < 1e-10


@pytest.mark.parametrize("name", list(CASES))
def test_bfloat16_tracks_float32(name):
    """bf16 embeddings: statistics stay float32, so the loss is within bf16 rounding of float32."""
    case = CASES[name]
    args32 = tuple(jnp.asarray(a, jnp.float32) if np.asarray(a).dtype == np.float64 else jnp.asarray(a)
                   for a in case.inputs(5, 64, 20.0))
    args16 = tuple(a.astype(jnp.bfloat16) if a.ndim >= 2 else a for a in args32)
    value32 = case.blockwise(*args32, block_size=16)
    value16 = case.blockwise(*args16, block_size=16)
    assert value16.dtype == jnp.float32
    assert rel_err(value16, value32, 1.0) < 3e-2


def test_ntxent_with_two_views_is_simclr_and_decoupled_drops_the_positive():
    """Independent of the references: V = 2 NT-Xent from a hand-written 2N x 2N softmax."""
    a, b = paired(0, 6)
    z = np.concatenate([a, b])
    logits = 10.0 * z @ z.T
    np.fill_diagonal(logits, -np.inf)
    partner = np.concatenate([np.arange(6, 12), np.arange(6)])
    log_prob = logits[np.arange(12), partner] - np.log(np.exp(logits).sum(axis=1))
    with jax.enable_x64(True):
        got = losses.ntxent_loss(jnp.stack([a, b]), 10.0, block_size=4)
    np.testing.assert_allclose(got, -log_prob.mean(), rtol=1e-12)


def test_cwcl_by_hand_with_orthogonal_frozen_embeddings():
    """Orthogonal frozen embeddings u_i = e_i: w = 1 on the diagonal and 1/2 elsewhere."""
    x, y = paired(1, 9)
    frozen = np.eye(9)  # <u_i, u_j> = delta_ij -> w = 1 on the diagonal, 1/2 elsewhere
    with jax.enable_x64(True):
        got = losses.cwcl_loss(x, y, 5.0, frozen, block_size=4)
    logits = 5.0 * x @ y.T
    w = 0.5 * (1 + np.eye(9))
    rows = -(w * log_softmax(logits, axis=1)).sum(1) / w.sum(1)
    cols = -(w * log_softmax(logits, axis=0)).sum(0) / w.sum(0)
    np.testing.assert_allclose(got, 0.5 * (rows.mean() + cols.mean()), rtol=1e-12)


def test_hard_negative_with_beta_zero_is_infonce():
    x, y = paired(2, 20)
    with jax.enable_x64(True):
        got = losses.hard_negative_loss(x, y, 3.0, beta=0.0, block_size=8)
        want = reference.clip_loss_dense(x, y, 3.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_uniformity_of_antipodal_pair():
    """Two antipodal unit vectors: ||z_1 - z_2||^2 = 4, so uniformity = -4 t."""
    z = np.array([[1.0, 0.0], [-1.0, 0.0]])
    with jax.enable_x64(True):
        np.testing.assert_allclose(losses.uniformity_loss(z, t=2.0), -8.0, rtol=1e-12)


@pytest.mark.parametrize("n,block_size", [(2, None), (37, 8)])
@pytest.mark.parametrize("gamma", [0.3, 1.0])
def test_isogclr_matches_dense_estimator(n, block_size, gamma):
    rng = np.random.default_rng(4)
    x, y = paired(4, n)
    tau_x, tau_y = rng.uniform(0.03, 0.5, n), rng.uniform(0.03, 0.5, n)
    u_x, u_y = rng.uniform(0.5, 2.0, n), np.zeros(n)  # y anchors unseen (u = 0, log u = -inf)
    with jax.enable_x64(True):
        def blockwise(x, y, tau_x, tau_y):
            estimates = isogclr.Estimates(jnp.log(u_x), jnp.log(u_y))
            return losses.isogclr_loss(x, y, tau_x, tau_y, estimates, gamma=gamma, rho=6.0,
                                       block_size=block_size)

        (value, new), grads = jax.value_and_grad(blockwise, argnums=(0, 1, 2, 3), has_aux=True)(
            x, y, tau_x, tau_y)
        dense = lambda *a: reference.isogclr_loss_dense(*a, u_x, u_y, gamma, 6.0)
        want_value, _, want_u_x, want_u_y = dense(x, y, tau_x, tau_y)
        want_grads = jax.grad(lambda *a: dense(*a)[1], argnums=(0, 1, 2, 3))(x, y, tau_x, tau_y)
    assert rel_err(value, want_value, 1.0) < 1e-12
    np.testing.assert_allclose(np.exp(new.log_u_x), want_u_x, rtol=1e-10)
    np.testing.assert_allclose(np.exp(new.log_u_y), want_u_y, rtol=1e-10)
    for g, w in zip(grads, want_grads):
        assert rel_err(g, w, 1.0 / n) < 1e-10


def test_isogclr_with_gamma_one_is_the_plain_objective_gradient():
    """u = g exactly when gamma = 1, so the estimator's gradient is that of tau log g + tau rho."""
    x, y = paired(6, 16)
    tau = np.full(16, 0.1)
    with jax.enable_x64(True):
        unseen = isogclr.Estimates(jnp.full(16, -jnp.inf), jnp.full(16, -jnp.inf))
        fn = lambda x: losses.isogclr_loss(x, y, tau, tau, unseen, gamma=1.0, rho=1.0,
                                           block_size=8)[0]
        value, grad = jax.value_and_grad(fn)(x)
        plain = lambda x: reference.isogclr_loss_dense(x, y, tau, tau, np.zeros(16),
                                                       np.zeros(16), 1.0, 1.0)[0]
        want, want_grad = jax.value_and_grad(plain)(x)
    assert rel_err(value, want, 1.0) < 1e-12 and rel_err(grad, want_grad, 1 / 16) < 1e-10


@pytest.mark.parametrize("call,message", [
    (lambda: losses.supcon_loss(jnp.ones((4, 3)), jnp.ones(4), 1.0), "integers"),
    (lambda: losses.supcon_loss(jnp.ones((4, 3)), jnp.ones(3, jnp.int32), 1.0), "one per row"),
    (lambda: losses.ntxent_loss(jnp.ones((1, 4, 3)), 1.0), "V >= 2"),
    (lambda: losses.hard_negative_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, beta=-1), "beta"),
    (lambda: losses.cwcl_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, jnp.ones((3, 2))), "frozen"),
    (lambda: losses.auc_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, surrogate="hinge"),
     "surrogate"),
    (lambda: losses.uniformity_loss(jnp.ones((1, 3))), "two"),
    (lambda: losses.clip_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, label_smoothing=1.0),
     "label_smoothing"),
    (lambda: losses.z_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, a=0.0), "a must"),
    (lambda: losses.isogclr_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones(3), jnp.ones(4),
                                 isogclr.Estimates(jnp.zeros(4), jnp.zeros(4))), "tau_x"),
])
def test_bad_input_is_one_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing_matches_optax_cross_entropies(eps):
    """Independent of the references: optax's smoothed one-hot targets and its cross-entropies."""
    import optax

    x, y = paired(7, 13)
    with jax.enable_x64(True):
        logits = 12.0 * x @ y.T
        soft = optax.smooth_labels(jnp.eye(13), eps)  # (1 - eps) onehot + eps / N
        want_clip = 0.5 * (optax.softmax_cross_entropy(logits, soft).mean()
                           + optax.softmax_cross_entropy(logits.T, soft).mean())
        binary = (1 - eps) * jnp.eye(13) + eps / 2
        want_siglip = optax.sigmoid_binary_cross_entropy(logits - 3.0, binary).sum() / 13
        got_clip = losses.clip_loss(x, y, 12.0, label_smoothing=eps, block_size=4)
        got_siglip = losses.siglip_loss(x, y, 12.0, -3.0, label_smoothing=eps, block_size=4)
    np.testing.assert_allclose(got_clip, want_clip, rtol=1e-12)
    np.testing.assert_allclose(got_siglip, want_siglip, rtol=1e-12)


def test_z_loss_is_shift_and_scale_invariant_and_rewards_a_separated_positive():
    """Scaling S leaves the loss (and so its scale gradient is 0); a positive far above its row's
    other scores has z = sqrt(N - 1), the largest a z-score can be."""
    x, y = paired(8, 10)
    with jax.enable_x64(True):
        value, grad = jax.value_and_grad(lambda s: losses.z_loss(x, y, s, block_size=4))(3.0)
        np.testing.assert_allclose(losses.z_loss(x, y, 70.0, block_size=4), value, rtol=1e-12)
        assert abs(grad) < 1e-12
        one_hot = np.eye(10)  # S = scale I: every row's positive alone at the top
        got = losses.z_loss(one_hot, one_hot, 5.0, a=1.0, b=1.0, eps=1e-12)
    z = np.sqrt(9.0)
    np.testing.assert_allclose(got, np.log1p(np.exp(1.0 - z)), rtol=1e-9)
