"""MoCHi: the blockwise running top-k against lax.top_k of the dense matrix (ragged tiles, the
8-device ring), the loss and its gradients against the dense float64 reference (one device and
the ring), a hand-computed case, no N x N intermediate, and the reduction to CLIP."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses import clip_loss, mochi_loss, reference
from contrastive.losses.cases import paired, rel_err
from contrastive.losses.mochi import mixing_schedule
from contrastive.losses.topk import running_topk
from contrastive.parallel import make_mesh, sharded_loss
from tests.losses.test_engine import _intermediate_sizes


def _dense_topk(q, keys, k):
    sims = np.where(np.eye(len(q), dtype=bool), -np.inf, q @ keys.T)
    return jax.lax.top_k(sims, k)


def _ring_mesh():
    return make_mesh({"data": 2, "fsdp": 4, "model": 1})


def _value_and_grads(fn, args):
    return jax.jit(jax.value_and_grad(fn, argnums=tuple(range(len(args)))))(*args)


# Tiles that do not divide N (37 = 4 x 8 + 5) and k above the tile edge; k = N - 1 (every
# negative) in tiles of 3.
@pytest.mark.parametrize("n,block,k", [(37, 8, 12), (10, 3, 9)])
def test_running_topk_equals_dense_top_k(n, block, k):
    x, y = paired(0, n)
    with jax.enable_x64(True):
        got = jax.jit(running_topk, static_argnums=(2, 3))(x, y, k, block)
        values, ids = _dense_topk(x, y, k)
    np.testing.assert_array_equal(got.ids, ids)
    np.testing.assert_allclose(got.values, values, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(got.embeddings, y[np.asarray(ids)])


def test_running_topk_on_the_ring_equals_dense_top_k():
    """8 devices, 7 rows each in tiles of 3 (padding on every device): the key blocks visit
    every device and the top-k is over the global batch, the positive (global i == j) left out."""
    x, y = paired(1, 56)
    with jax.enable_x64(True):
        ring = sharded_loss(lambda q, keys, axis_name=None: running_topk(q, keys, 9, 3, axis_name),
                            _ring_mesh())
        got = jax.jit(ring)(x, y)
        values, ids = _dense_topk(x, y, 9)
    np.testing.assert_array_equal(got.ids, ids)
    np.testing.assert_allclose(got.values, values, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(got.embeddings, y[np.asarray(ids)])


_OPTIONS = dict(k=6, num_mixed=8, num_query_mixed=3)


def _ring():
    return sharded_loss(lambda *a, **kw: mochi_loss(*a, block_size=3, **_OPTIONS, **kw),
                        _ring_mesh())


def test_ring_matches_float64_reference():
    """8 devices of 7 rows in tiles of 3: value and every gradient equal the dense loss."""
    with jax.enable_x64(True):
        x, y = paired(2, 56)
        args = (x, y, np.float64(20.0))
        value, grads = _value_and_grads(_ring(), args)
        want, want_grads = _value_and_grads(
            lambda *a: reference.mochi_loss_dense(*a, **_OPTIONS), args)
    assert rel_err(value, want, 1.0) < 1e-12
    for g, w, floor in zip(grads, want_grads, [20.0 / 56] * 2 + [1.0]):
        assert rel_err(g, w, floor) < 1e-10


@pytest.mark.slow  # the trainer's record is checked 1 vs 8 devices by tests/train/test_loss_choice
def test_float32_ring_equals_one_device():
    args32 = tuple(jnp.float32(a) for a in paired(2, 56)) + (jnp.float32(20.0),)
    got, got_grads = _value_and_grads(_ring(), args32)
    single, single_grads = _value_and_grads(lambda *a: mochi_loss(*a, block_size=8, **_OPTIONS),
                                            args32)
    assert rel_err(got, single) < 1e-6
    for g, w in zip(got_grads, single_grads):
        assert rel_err(g, w, 1e-3) < 1e-5


def test_by_hand_two_orthogonal_pairs():
    """x = y = I_2: each query's one negative n is orthogonal to it, so no pairs (k = 1) and the
    one query mix (beta = 1/4) is (x_i + 3 n) / sqrt(10): logit scale / sqrt(10)."""
    with jax.enable_x64(True):
        eye = jnp.eye(2)
        got = jax.jit(lambda a: mochi_loss(a, a, 2.0, k=4, num_mixed=3, num_query_mixed=1))(eye)
    want = np.log(np.exp(2.0) + 1.0 + np.exp(2.0 / np.sqrt(10.0))) - 2.0
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_mixing_schedule_is_the_documented_grid():
    s = mixing_schedule(3, 4, 2)
    assert list(zip(s.first, s.second)) == [(0, 1), (1, 2), (0, 2), (0, 1)]  # gap 1, gap 2, cycle
    np.testing.assert_allclose(s.alpha, [0.2, 0.4, 0.6, 0.8])
    assert list(s.query_mixed) == [0, 1]
    np.testing.assert_allclose(s.beta, [1 / 6, 2 / 6])
    assert len(mixing_schedule(1, 5, 2).alpha) == 0 and len(mixing_schedule(0, 0, 2).beta) == 0


def test_no_mixing_is_exactly_clip():
    x, y = (jnp.asarray(a, jnp.float32) for a in paired(3, 20))
    args = (x, y, jnp.float32(10.0))
    want, want_grads = _value_and_grads(lambda *a: clip_loss(*a, block_size=8), args)
    no_mixing = lambda *a: mochi_loss(*a, k=8, num_mixed=0, num_query_mixed=0, block_size=8)
    got, grads = _value_and_grads(no_mixing, args)
    np.testing.assert_array_equal(got, want)
    for g, w in zip(grads, want_grads):
        np.testing.assert_array_equal(g, w)
    k0 = jax.jit(lambda *a: mochi_loss(*a, k=0, num_mixed=0, num_query_mixed=0, block_size=8))
    np.testing.assert_array_equal(k0(*args), want)
    # One example has no negatives: nothing to mix (k clipped to 0), InfoNCE's 0.
    assert jax.jit(lambda x, y: mochi_loss(x, y, 10.0))(x[:1], y[:1]) == 0.0


def test_never_materialises_the_score_matrix():
    """No value in forward + backward exceeds a tile (with its k candidates) or the O(N k d)
    top-k and synthetic negatives."""
    n, d, block, k, s1, s2 = 2048, 16, 128, 4, 4, 2
    x = jnp.ones((n, d))
    fn = lambda x, y, s: mochi_loss(x, y, s, k=k, num_mixed=s1, num_query_mixed=s2,
                                    block_size=block)
    jaxpr = jax.make_jaxpr(jax.value_and_grad(fn, argnums=(0, 1, 2)))(x, x, 1.0)
    largest = max(_intermediate_sizes(jaxpr.jaxpr))
    assert largest <= max(block * (block + k), n * d * max(k, s1 + s2)), largest
    assert largest < n * n // 16


@pytest.mark.parametrize("options,message", [
    (dict(k=-1), "k must be an int >= 0"),
    (dict(num_mixed=2.0), "num_mixed must be an int"),
    (dict(num_query_mixed=True), "num_query_mixed must be an int"),
    (dict(k=1, num_mixed=4), "num_mixed = 4 .* needs k >= 2"),
    (dict(k=0, num_mixed=0, num_query_mixed=2), "num_query_mixed = 2 .* needs k >= 1"),
])
def test_bad_option_is_one_clear_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        mochi_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, **options)
