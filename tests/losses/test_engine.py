"""The engine itself: its statistics, its memory footprint, and its errors for bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from contrastive.losses import Reductions, clip_loss, pairwise_stats, siglip_loss
from contrastive.losses.engine import choose_block_size
from contrastive.losses.cases import paired


@pytest.mark.parametrize("n,block_size", [(1, None), (10, 4), (300, 64), (300, None)])
def test_row_and_column_logsumexp_match_scipy(n, block_size):
    x, y = paired(n, n)
    scale, bias = 30.0, -2.0
    with jax.enable_x64(True):
        stats = pairwise_stats(
            jnp.asarray(x), jnp.asarray(y), scale, bias, Reductions(row_lse=True, col_lse=True),
            block_size,
        )
    s = scale * x @ y.T + bias
    np.testing.assert_allclose(stats.row_lse, logsumexp(s, axis=1), rtol=1e-13)
    np.testing.assert_allclose(stats.col_lse, logsumexp(s, axis=0), rtol=1e-13)
    assert stats.row_sum is None


def test_pair_sum_sees_global_indices():
    """phi receives each tile's global row and column indices: sum_j phi = sum_j [j > i] s_ij."""
    x, y = paired(0, 37)
    upper = lambda s, row, col: jnp.where(col.ids[None, :] > row.ids[:, None], s, 0.0)
    with jax.enable_x64(True):
        stats = pairwise_stats(jnp.asarray(x), jnp.asarray(y), 1.0, None, Reductions(row_sum=upper), 8)
    np.testing.assert_allclose(stats.row_sum, np.sum(np.triu(x @ y.T, k=1), axis=1), rtol=1e-12)


def test_automatic_block_size_pads_little():
    assert choose_block_size(1, backend="cpu") == 1
    assert choose_block_size(500, backend="cpu") == 500
    assert choose_block_size(1500, backend="cpu") == 500
    assert choose_block_size(1025, backend="cpu") == 342
    assert choose_block_size(65536, backend="cpu") == 512
    assert choose_block_size(65536, backend="gpu") == 4096
    assert choose_block_size(10, 4) == 4 and choose_block_size(10, 64) == 10


def _intermediate_sizes(jaxpr):
    """Element counts of every value in a jaxpr, sub-jaxprs (scan bodies, custom VJPs) included."""
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            yield int(np.prod(var.aval.shape))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else [param]:
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    yield from _intermediate_sizes(getattr(inner, "jaxpr", inner))


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_never_materialises_the_score_matrix(loss):
    """No value anywhere in forward + backward has more than block^2 or N d elements."""
    n, d, block = 2048, 32, 128
    x = jnp.ones((n, d))
    if loss == "clip":
        fn = lambda x, y, s: clip_loss(x, y, s, block_size=block)
        args = (x, x, 1.0)
    else:
        fn = lambda x, y, s, b: siglip_loss(x, y, s, b, block_size=block)
        args = (x, x, 1.0, 0.0)
    jaxpr = jax.make_jaxpr(jax.value_and_grad(fn, argnums=tuple(range(len(args)))))(*args)
    largest = max(_intermediate_sizes(jaxpr.jaxpr))
    assert largest <= max(block * block, n * d), largest
    assert largest < n * n // 16


def test_compiled_temporaries_stay_far_below_dense():
    """XLA's own accounting: forward + backward temporaries are a small fraction of S's bytes."""
    n, d = 4096, 64
    x = jax.ShapeDtypeStruct((n, d), jnp.float32)
    s = jax.ShapeDtypeStruct((), jnp.float32)
    grad = jax.jit(jax.value_and_grad(lambda x, y, s: clip_loss(x, y, s, block_size=256), (0, 1, 2)))
    temp_bytes = grad.lower(x, x, s).compile().memory_analysis().temp_size_in_bytes
    dense_scores_bytes = n * n * 4
    assert temp_bytes < dense_scores_bytes / 8, (temp_bytes, dense_scores_bytes)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: clip_loss(jnp.ones((4, 3)), jnp.ones((5, 3)), 1.0), "same shape"),
        (lambda: clip_loss(jnp.ones((4, 3)), jnp.ones((4, 2)), 1.0), "same shape"),
        (lambda: clip_loss(jnp.ones((4,)), jnp.ones((4,)), 1.0), "2-D"),
        (lambda: clip_loss(jnp.ones((2, 4, 3)), jnp.ones((2, 4, 3)), 1.0), "2-D"),
        (lambda: clip_loss(jnp.ones((0, 3)), jnp.ones((0, 3)), 1.0), "empty"),
        (lambda: clip_loss(jnp.ones((4, 3), jnp.int32), jnp.ones((4, 3), jnp.int32), 1.0),
         "floating"),
        (lambda: clip_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones(2)), "scale must be a scalar"),
        (lambda: siglip_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, jnp.ones((1,))),
         "bias must be a scalar"),
        (lambda: siglip_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, None), "needs a scalar bias"),
        (lambda: clip_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, block_size=0), "block_size"),
        (lambda: clip_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, block_size=-8), "block_size"),
        (lambda: clip_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1.0, block_size=2.5), "block_size"),
    ],
)
def test_bad_input_is_one_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_input_is_caught_under_jit_too():
    with pytest.raises(ValueError, match="same shape"):
        jax.jit(clip_loss)(jnp.ones((4, 3)), jnp.ones((5, 3)), 1.0)
