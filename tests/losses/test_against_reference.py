"""clip_loss and siglip_loss, value and every gradient, against the dense float64 references."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_expit, logsumexp

from contrastive.losses import clip_loss, reference, siglip_loss
from contrastive.losses.cases import paired, rel_err

BIAS = -10.0  # SigLIP's initial bias


def _clip(block_size):
    return lambda x, y, s: clip_loss(x, y, s, block_size=block_size)


def _siglip(block_size):
    return lambda x, y, s, b: siglip_loss(x, y, s, b, block_size=block_size)


def _grads(fn, *args):
    return jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)


def _compare(fn, ref, args):
    """Relative errors of [value, dx, dy, dscale(, dbias)], each floored at its natural size
    (see `rel_err`): the value is a difference of O(scale) terms (lse_i - S_ii), dx and dy are
    O(scale / N) (|dL/dS_ij| <= 1/N per row, |y_j| = 1), d scale and d bias are O(1)."""
    (value, grads), (want, want_grads) = _grads(fn, *args), _grads(ref, *args)
    x, scale = args[0], float(args[2])
    floors = [scale / x.shape[0]] * 2 + [1.0] * (len(grads) - 2)
    return [rel_err(value, want, scale)] + [
        rel_err(g, w, floor) for g, w, floor in zip(grads, want_grads, floors)
    ]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


# Awkward shapes: N = 1, tiles that do not divide N, tile larger than N, the automatic tile.
SHAPES = [(1, None), (2, 1), (7, 3), (7, None), (257, 64), (257, 100), (1000, 128), (1000, None)]


@pytest.mark.parametrize("n,block_size", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 100.0, 1e4])
@pytest.mark.parametrize("duplicate", [False, True])
def test_float64_matches_reference(n, block_size, scale, duplicate):
    x, y = paired(n, n, duplicate=duplicate)
    s, b = jnp.float64(scale), jnp.float64(BIAS)
    clip_errs = _compare(_clip(block_size), reference.clip_loss_dense, (x, y, s))
    siglip_errs = _compare(_siglip(block_size), reference.siglip_loss_dense, (x, y, s, b))
    # value, dx, dy, dscale (, dbias): float64 agrees to ~1e-12 (N = 1: absolute 1e-16 on a 0 loss).
    assert max(clip_errs) < 1e-9, clip_errs
    assert max(siglip_errs) < 1e-9, siglip_errs


@pytest.mark.parametrize("scale", [1.0, 100.0, 1e4])
def test_float32_matches_reference(scale):
    """float32 inputs: statistics in float32, still within 1e-4 of the float64 loss."""
    x, y = paired(0, 257)
    x32, y32 = jnp.float32(x), jnp.float32(y)
    s, b = jnp.float32(scale), jnp.float32(BIAS)
    for fn, ref, args, args64 in [
        (_clip(64), reference.clip_loss_dense, (x32, y32, s), (x, y, jnp.float64(scale))),
        (_siglip(64), reference.siglip_loss_dense, (x32, y32, s, b),
         (x, y, jnp.float64(scale), jnp.float64(BIAS))),
    ]:
        (value, grads), (want, want_grads) = _grads(fn, *args), _grads(ref, *args64)
        assert value.dtype == jnp.float32
        assert rel_err(value, want) < 1e-5
        for g, w in zip(grads, want_grads):
            assert g.dtype == jnp.float32
            # S carries float32 rounding times scale: at scale 1e4 the softmax moves by ~1e-3.
            assert rel_err(g, w) < (1e-4 if scale <= 100 else 1e-2)


@pytest.mark.parametrize("loss", ["clip", "siglip"])
@pytest.mark.parametrize("scale", [1.0, 100.0, 1e4])
def test_bfloat16_within_documented_tolerance(loss, scale):
    """bf16 inputs, compared with the f64 reference on the same (bf16-rounded) inputs.

    Documented tolerance: the forward pass is exact up to float32 accumulation (rel 1e-5); the
    backward pass rounds dS to bf16 before its matmuls (2^-9 per element), so gradients agree to
    rel 1e-2 (measured ~2e-3)."""
    x, y = paired(1, 257, d=64)
    xb, yb = jnp.bfloat16(x), jnp.bfloat16(y)
    x64, y64 = np.float64(xb), np.float64(yb)
    if loss == "clip":
        fn, ref = _clip(64), reference.clip_loss_dense
        args, args64 = (xb, yb, jnp.float32(scale)), (x64, y64, jnp.float64(scale))
    else:
        fn, ref = _siglip(64), reference.siglip_loss_dense
        args = (xb, yb, jnp.float32(scale), jnp.float32(BIAS))
        args64 = (x64, y64, jnp.float64(scale), jnp.float64(BIAS))
    (value, grads), (want, want_grads) = _grads(fn, *args), _grads(ref, *args64)
    assert value.dtype == jnp.float32  # statistics are float32 for bf16 inputs
    assert grads[0].dtype == grads[1].dtype == jnp.bfloat16
    assert rel_err(value, want) < 1e-5
    for g, w in zip(grads, want_grads):
        assert rel_err(g, w) < 1e-2


def test_no_overflow_at_extreme_scale():
    """scale = 1e4 with far-apart scores: finite loss and gradients in float32 and bf16."""
    x, y = paired(2, 300)
    for dtype in (jnp.float32, jnp.bfloat16):
        xs, ys = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        for fn, args in [(_clip(64), (xs, ys, jnp.float32(1e4))),
                         (_siglip(64), (xs, ys, jnp.float32(1e4), jnp.float32(BIAS)))]:
            value, grads = _grads(fn, *args)
            assert np.isfinite(float(value))
            for g in grads:
                assert np.all(np.isfinite(np.asarray(g, np.float64)))


def test_references_match_numpy():
    """The references themselves against a NumPy/SciPy transcription of OpenCLIP's formulas."""
    x, y = paired(3, 9)
    scale, bias = 7.0, -2.0
    logits = scale * x @ y.T
    diag = np.diag(logits)
    want_clip = 0.5 * (np.mean(logsumexp(logits, 1) - diag) + np.mean(logsumexp(logits, 0) - diag))
    z = 2 * np.eye(9) - 1
    want_siglip = -np.sum(log_expit(z * (logits + bias))) / 9
    np.testing.assert_allclose(reference.clip_loss_dense(x, y, scale), want_clip, rtol=1e-13)
    np.testing.assert_allclose(
        reference.siglip_loss_dense(x, y, scale, bias), want_siglip, rtol=1e-13
    )


def test_composes_with_jit_grad_vmap():
    """vmap over a stack of batches equals a loop; jit(grad(vmap)) equals the reference."""
    xs, ys = zip(*(paired(seed, 11) for seed in range(3)))
    xs, ys = np.stack(xs), np.stack(ys)
    scale = jnp.float64(20.0)

    batched = jax.vmap(lambda x, y: clip_loss(x, y, scale, block_size=4))
    chex.assert_trees_all_close(
        batched(xs, ys), np.array([reference.clip_loss_dense(x, y, scale) for x, y in zip(xs, ys)]),
        rtol=1e-12,
    )
    total = lambda fn: (lambda x, y, s: jnp.sum(jax.vmap(lambda a, b: fn(a, b, s))(x, y)))
    got = jax.jit(jax.grad(total(_clip(4)), argnums=(0, 1, 2)))(xs, ys, scale)
    want = jax.grad(total(reference.clip_loss_dense), argnums=(0, 1, 2))(xs, ys, scale)
    chex.assert_trees_all_close(got, want, rtol=1e-10, atol=1e-14)

    bias = jnp.float64(BIAS)
    sig = jax.jit(jax.vmap(lambda x, y: siglip_loss(x, y, scale, bias, block_size=4)))(xs, ys)
    chex.assert_trees_all_close(
        sig, np.array([reference.siglip_loss_dense(x, y, scale, bias) for x, y in zip(xs, ys)]),
        rtol=1e-12,
    )
