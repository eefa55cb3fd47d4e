"""The pod-scale memory options change memory only: a scanned Transformer equals the unrolled one
on the same (stacked) parameters, and head-chunked attention equals plain attention, values and
gradients, with and without remat, with a causal + padding mask."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import transformer


def _stack_blocks(params, depth):
    """Unrolled {"block0": ..., "block1": ...} -> scanned {"blocks": stacked}."""
    params = dict(params)
    blocks = [params.pop(f"block{i}") for i in range(depth)]
    params["blocks"] = jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)
    return params


@pytest.mark.parametrize("remat", [pytest.param(False, marks=pytest.mark.slow), True])
def test_scan_equals_unrolled(remat):
    depth, x = 3, jax.random.normal(jax.random.PRNGKey(1), (2, 5, 16))
    mask = nn.make_causal_mask(jnp.ones((2, 5)), dtype=bool)
    unrolled = transformer.Transformer(depth, 32, 4, remat=remat)
    scanned = transformer.Transformer(depth, 32, 4, remat=remat, scan=True, head_chunks=2)
    params = nn.meta.unbox(unrolled.init(jax.random.PRNGKey(0), x, mask))["params"]
    stacked = _stack_blocks(params, depth)
    shapes = jax.tree.map(jnp.shape, nn.meta.unbox(scanned.init(jax.random.PRNGKey(0), x, mask)))
    assert shapes["params"] == jax.tree.map(jnp.shape, stacked)

    def loss(model, p):
        return jnp.sum(model.apply({"params": p}, x, mask) ** 2)

    np.testing.assert_allclose(loss(scanned, stacked), loss(unrolled, params), rtol=1e-5)
    g_scan = jax.grad(lambda p: loss(scanned, p))(stacked)
    g_unrolled = _stack_blocks(jax.grad(lambda p: loss(unrolled, p))(params), depth)
    # Float32 rounding, relative to the largest gradient (the key bias's is exactly 0 in theory).
    tol = 1e-5 * max(float(jnp.max(jnp.abs(b))) for b in jax.tree.leaves(g_unrolled))
    for a, b in zip(jax.tree.leaves(g_scan), jax.tree.leaves(g_unrolled)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=tol)


@pytest.mark.parametrize("mask_heads", [None, 1, 4])
def test_chunked_attention_equals_plain(mask_heads):
    q, k, v = jax.random.normal(jax.random.PRNGKey(2), (3, 2, 6, 4, 8))
    mask = None if mask_heads is None else (
        jax.random.uniform(jax.random.PRNGKey(3), (2, mask_heads, 6, 6)) > 0.3) | jnp.eye(6, dtype=bool)
    f = lambda c: lambda q, k, v: jnp.sum(
        jnp.sin(transformer.chunked_attention(q, k, v, mask, jnp.float32, c)))
    for chunks in (2, 4):
        np.testing.assert_allclose(f(chunks)(q, k, v), f(1)(q, k, v), rtol=1e-5)
        for a, b in zip(jax.grad(f(chunks), (0, 1, 2))(q, k, v), jax.grad(f(1), (0, 1, 2))(q, k, v)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
