"""GRAM beyond the zoo's shared cases (which run three modalities): the volume's geometry, two
modalities against the reference, and the ring against one device."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import losses
from contrastive.losses import gram, reference
from contrastive.losses.cases import paired, rel_err, unit_rows
from contrastive.parallel import make_mesh, sharded_loss


def test_small_det_and_adjugate_match_numpy_even_when_singular():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(4, 3, 3))
    m[0, 2] = m[0, 0]  # singular: inv() fails, the adjugate is still defined
    with jax.enable_x64(True):
        det, adj = gram.small_det(m), gram.adjugate(m)
    np.testing.assert_allclose(det, np.linalg.det(m), atol=1e-12)
    np.testing.assert_allclose(adj[1:], np.linalg.det(m[1:])[:, None, None]
                               * np.linalg.inv(m[1:]), rtol=1e-10)
    # adj(m) m = det(m) I holds for the singular one too.
    np.testing.assert_allclose(adj[0] @ m[0], np.zeros((3, 3)), atol=1e-12)


def test_two_modalities_volume_is_the_sine_and_matches_the_reference():
    """M = 2: Vol_ij = |sin angle(x_i, y_j)|, so the loss is InfoNCE on -scale |sin|."""
    with jax.enable_x64(True):
        x, y = paired(4, 23)
        cos = x @ y.T
        logits = -5.0 * np.sqrt(1 - cos ** 2 + 1e-6)
        lse = lambda a, axis: np.log(np.exp(a).sum(axis=axis))
        want = -0.5 * (np.mean(np.diag(logits) - lse(logits, 1))
                       + np.mean(np.diag(logits) - lse(logits, 0)))
        got, grads = jax.value_and_grad(
            lambda *a: losses.gram_loss(*a, block_size=8), argnums=(0, 1, 2))(x, y, 5.0)
        _, want_grads = jax.value_and_grad(reference.gram_loss_dense, argnums=(0, 1, 2))(x, y, 5.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for g, w in zip(grads, want_grads):
        assert rel_err(g, w, 1e-3) < 1e-10


def test_volume_vanishes_when_the_modalities_are_dependent():
    """A sample whose three modalities are equal spans no volume (Vol_ii = sqrt(eps)); but two
    equal non-anchor modalities make every Gram matrix singular, whatever the anchor, so all
    logits tie and the loss is log N: the volume sees only independent directions."""
    rng = np.random.default_rng(1)
    x = unit_rows(rng, 6, 8)
    near = lambda: x + 0.5 * unit_rows(rng, 6, 8)
    others = np.stack([near(), near()], axis=1)
    others /= np.linalg.norm(others, axis=-1, keepdims=True)
    with jax.enable_x64(True):
        tied = losses.gram_loss(x, np.stack([x, x], axis=1), 10.0)
        matched = losses.gram_loss(x, others, 10.0)
        shuffled = losses.gram_loss(np.roll(x, 1, axis=0), others, 10.0)
    np.testing.assert_allclose(tied, np.log(6), rtol=1e-9)
    assert matched < 0.5 * shuffled


@pytest.mark.parametrize("rows_per_device", [1, 5])
def test_ring_on_eight_devices_equals_one_device(rows_per_device):
    mesh = make_mesh({"data": 2, "fsdp": 4})
    n = 8 * rows_per_device
    x, y = (jnp.float32(a) for a in paired(2, n))
    others = jnp.stack([y, jnp.float32(unit_rows(np.random.default_rng(3), n, 16))], axis=1)
    fn = lambda a, b, s, **k: losses.gram_loss(a, b, s, block_size=2, **k)
    args = (x, others, jnp.float32(8.0))
    grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(*args)
    (value, grads), (want, want_grads) = grad(sharded_loss(fn, mesh)), grad(fn)
    assert rel_err(value, want) < 1e-6
    for g, w in zip(grads, want_grads):
        assert rel_err(g, w) < 3e-5  # float32: the ring sums in another order


def test_bad_inputs_are_one_clear_error():
    with pytest.raises(ValueError, match=r"y must be \(N, d\) or \(N, K, d\)"):
        losses.gram_loss(jnp.ones((4, 3)), jnp.ones((4,)), 1.0)
    with pytest.raises(ValueError, match="GRAM's eps must be a positive number"):
        losses.gram_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, eps=0)
