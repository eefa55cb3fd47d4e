"""The fused Pallas kernels (impl="pallas"), run by Pallas' interpreter on CPU, against the dense
float64 references; plus their lowering to Triton, which needs no GPU."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses import clip_loss, pallas, reference, siglip_loss
from contrastive.losses.cases import paired, rel_err
from contrastive.losses.reductions import Reductions, pair_nll

BIAS = -10.0


def _value_and_grads(fn, *args):
    return jax.jit(jax.value_and_grad(fn, argnums=tuple(range(len(args)))))(*args)


def _errors(fn, ref, args):
    """Relative errors of [value, dx, dy, dscale(, dbias)], floored at their natural sizes as in
    test_against_reference: the value at scale, dx and dy at scale / N, the scalars at 1."""
    (value, grads), (want, want_grads) = _value_and_grads(fn, *args), _value_and_grads(ref, *args)
    scale, n = float(args[2]), args[0].shape[0]
    floors = [scale / n] * 2 + [1.0] * (len(grads) - 2)
    return [rel_err(value, want, scale)] + [
        rel_err(g, w, f) for g, w, f in zip(grads, want_grads, floors)
    ]


def _clip(**kw):
    return lambda x, y, s: clip_loss(x, y, s, impl="pallas", **kw)


def _siglip(**kw):
    return lambda x, y, s, b: siglip_loss(x, y, s, b, impl="pallas", **kw)


# Awkward shapes (kept small: the interpreter runs every grid step and loop iteration in turn):
# N = 1; N and d below one block; N = 130 over 64- and 32-row blocks (a last block of 2 real
# rows, and more padding than one column block with 64 x 16); d = 20 padded to 32.
SHAPES = [(1, 16, None), (7, 20, None), (130, 16, 64), (130, 20, 32)]


@pytest.mark.parametrize("n,d,block_size", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_float64_matches_reference(n, d, block_size, scale):
    x, y = paired(n, n, d=d, duplicate=n > 2)
    with jax.enable_x64(True):
        s, b = jnp.float64(scale), jnp.float64(BIAS)
        clip_errs = _errors(_clip(block_size=block_size), reference.clip_loss_dense, (x, y, s))
        siglip_errs = _errors(_siglip(block_size=block_size), reference.siglip_loss_dense,
                              (x, y, s, b))
    # value, dx, dy, dscale (, dbias): float64 agrees to ~1e-15, as the XLA engine does.
    assert max(clip_errs) < 1e-12, clip_errs
    assert max(siglip_errs) < 1e-12, siglip_errs


def test_chunked_depth_and_output_match_reference():
    """d split into depth chunks for the scores and output chunks for the gradient (the large-d
    path on GPU), rows != cols, backward tiles unlike the forward's, padding of N and of d."""
    blocks = pallas.Blocks(rows=32, cols=16, depth=16, out=16, grad_rows=16, grad_cols=64)
    x, y = paired(1, 45, d=40)  # d padded to 48: three depth chunks, three output chunks
    with jax.enable_x64(True):
        s, b = jnp.float64(30.0), jnp.float64(BIAS)
        reductions = Reductions(row_lse=True, col_lse=True, row_sum=pair_nll)

        def fused(x, y, s, b):
            st = pallas.pairwise_stats(x, y, s, b, reductions, blocks=blocks)
            return jnp.mean(st.row_lse) + 0.3 * jnp.mean(st.col_lse) + 0.1 * jnp.mean(st.row_sum)

        def dense(x, y, s, b):
            logits = s * x @ y.T + b
            z = 2 * jnp.eye(x.shape[0]) - 1
            return (jnp.mean(jax.nn.logsumexp(logits, 1))
                    + 0.3 * jnp.mean(jax.nn.logsumexp(logits, 0))
                    + 0.1 * jnp.mean(jnp.sum(jax.nn.softplus(-z * logits), 1)))

        errs = _errors(fused, dense, (x, y, s, b))
    assert max(errs) < 1e-12, errs


def test_every_statistic_matches_dense():
    """All four statistics, column nll sums included (the transposed kernels), and a gradient
    through a random combination of them."""
    x, y = paired(2, 37, d=16)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=37) for _ in range(4)]
    with jax.enable_x64(True):
        reductions = Reductions(row_lse=True, col_lse=True, row_sum=pair_nll, col_sum=pair_nll)

        def dense_stats(x, y, s, b):
            logits = s * x @ y.T + b
            nll = jax.nn.softplus(-(2 * jnp.eye(x.shape[0]) - 1) * logits)
            return (jax.nn.logsumexp(logits, 1), jax.nn.logsumexp(logits, 0),
                    jnp.sum(nll, 1), jnp.sum(nll, 0))

        def fused_stats(x, y, s, b):
            return tuple(pallas.pairwise_stats(x, y, s, b, reductions, block_size=16))

        args = (x, y, jnp.float64(5.0), jnp.float64(-3.0))
        for got, want in zip(fused_stats(*args), dense_stats(*args)):
            assert rel_err(got, want) < 1e-13
        combine = lambda stats_fn: lambda *a: sum(
            jnp.dot(w, v) for w, v in zip(weights, stats_fn(*a)))
        errs = _errors(combine(fused_stats), combine(dense_stats), args)
    assert max(errs) < 1e-12, errs


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 1e-2)])
def test_low_precision_agrees_with_the_xla_engine(dtype, tol):
    """float32 and bf16 inputs: float32 statistics, the input dtype for dx and dy, and the same
    values as the XLA engine up to rounding (bf16: dS is rounded to bf16 before its matmuls in
    both, in different tile orders)."""
    x, y = paired(3, 100, d=32)
    xs, ys = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
    s, b = jnp.float32(20.0), jnp.float32(BIAS)
    for fused, xla, args in [
        (_clip(block_size=32), lambda x, y, s: clip_loss(x, y, s, block_size=32), (xs, ys, s)),
        (_siglip(block_size=32), lambda x, y, s, b: siglip_loss(x, y, s, b, block_size=32),
         (xs, ys, s, b)),
    ]:
        (value, grads), (want, want_grads) = _value_and_grads(fused, *args), _value_and_grads(
            xla, *args)
        assert value.dtype == jnp.float32
        assert grads[0].dtype == grads[1].dtype == dtype
        assert rel_err(value, want) < 1e-5
        for g, w in zip(grads, want_grads):
            assert rel_err(g, w) < tol


def test_no_overflow_at_extreme_scale():
    """scale = 1e4 in float32 with padding: finite loss and gradients (padded columns' exp's
    overflow and must be masked by selection, not multiplied by zero)."""
    x, y = paired(4, 50, d=16)
    xs, ys = jnp.float32(x), jnp.float32(y)
    for fn, args in [(_clip(block_size=32), (xs, ys, jnp.float32(1e4))),
                     (_siglip(block_size=32), (xs, ys, jnp.float32(1e4), jnp.float32(BIAS)))]:
        value, grads = _value_and_grads(fn, *args)
        assert np.isfinite(float(value))
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("call,message", [
    (lambda x: clip_loss(x, x, 1.0, impl="triton"), "impl must be one of"),
    (lambda x: siglip_loss(x, x, 1.0, 0.0, impl="Pallas"), "impl must be one of"),
    (lambda x: clip_loss(x, x, 1.0, impl="pallas", axis_name="data"), "does not support axis_name"),
    (lambda x: siglip_loss(x, x, 1.0, 0.0, impl="pallas", axis_name="data"),
     "does not support axis_name"),
    (lambda x: clip_loss(x, x, 1.0, impl="pallas", block_size=100), "power of two >= 16"),
    (lambda x: clip_loss(x, x, 1.0, impl="pallas", block_size=8), "power of two >= 16"),
    (lambda x: pallas.Blocks(out=48).check(), "out must be a power of two >= 16 .*or None"),
    (lambda x: pallas.pairwise_stats(x, x.T, 1.0, None, Reductions(row_lse=True)),
     "one shape and dtype"),
    (lambda x: pallas.pairwise_stats(x, x, 1.0, None, Reductions(row_sum=lambda s, r, c: s)),
     "the fused kernels compute log-sum-exps of S"),
])
def test_bad_choice_is_one_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(jnp.ones((4, 8)))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("blocks", [
    None,  # the GPU defaults
    pallas.Blocks(rows=128, cols=128, depth=64, out=256, grad_rows=32, grad_cols=64,
                  num_warps=8, num_stages=3),
])
def test_kernels_lower_to_triton(dtype, blocks):
    """Every kernel (forward rows and columns, both gradients) lowers to Triton IR, which is
    where Pallas rejects what Triton cannot do (non-power-of-two shapes, unsupported ops).
    Lowering is cross-platform, so this runs without a GPU; compiling and running wait for one."""
    reductions = Reductions(row_lse=True, col_lse=True, row_sum=pair_nll, col_sum=pair_nll)

    def loss(x, y, s, b):
        st = pallas.pairwise_stats(x, y, s, b, reductions, blocks=blocks, interpret=False,
                                   backend="gpu")
        return sum(jnp.mean(v) for v in st)

    x = jax.ShapeDtypeStruct((1000, 1024), dtype)  # N padded, d chunked
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    lowered = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3))).trace(
        x, x, scalar, scalar).lower(lowering_platforms=("cuda",))
    assert lowered.as_text().count("xla.gpu.triton") == 4


def test_interpreted_program_never_holds_the_score_matrix():
    """XLA's count of the compiled (interpreted) program's temporaries stays O(N d), far below
    one N x N float32 matrix."""
    n, d = 4096, 16
    x = jax.ShapeDtypeStruct((n, d), jnp.float32)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    fn = jax.jit(jax.value_and_grad(_siglip(), argnums=(0, 1, 2, 3)))
    temp = fn.lower(x, x, scalar, scalar).compile().memory_analysis().temp_size_in_bytes
    assert temp < n * n * 4 / 16, temp


def test_composes_with_vmap():
    """vmap over a stack of batches (Pallas adds a grid axis) equals the per-batch reference,
    value and gradient."""
    xs, ys = (np.stack(a) for a in zip(*(paired(seed, 11) for seed in range(3))))
    with jax.enable_x64(True):
        total = lambda fn: lambda x, y: jnp.sum(jax.vmap(lambda a, b: fn(a, b, 5.0))(x, y))
        got = _value_and_grads(total(_clip()), xs, ys)
        want = _value_and_grads(total(reference.clip_loss_dense), xs, ys)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert rel_err(g, w) < 1e-12
