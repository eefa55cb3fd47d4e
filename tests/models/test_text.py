import chex
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import text_transformer
from tests.models.helpers import apply, init

TINY = dict(width=32, depth=2, mlp_dim=64, num_heads=4, vocab_size=50, max_len=12)

# Rows of different lengths, padded with 0 after the last token (CLIP's layout).
ROWS = [[5, 7, 9, 49], [3, 49], [8, 2, 4, 6, 1, 49], [11]]


def padded(rows, length):
    return jnp.array([row + [0] * (length - len(row)) for row in rows], jnp.int32)


@pytest.mark.parametrize("causal, pool", [(True, "eos"), (False, "mean"), (False, "eos")])
def test_each_row_equals_the_row_alone_without_padding(causal, pool):
    # Checks the padding mask, the causal mask, the positions and the pooling together: a row's
    # features may not depend on how much padding follows it or on the other rows.
    model = text_transformer("mu", **TINY, causal=causal, pool=pool)
    tokens = padded(ROWS, 10)
    variables = init(model, tokens)
    out = apply(model, variables, tokens)
    chex.assert_shape(out, (len(ROWS), 32))
    for i, row in enumerate(ROWS):
        alone = apply(model, variables, jnp.array([row], jnp.int32))[0]
        np.testing.assert_allclose(out[i], alone, atol=1e-5)


def test_causal_and_bidirectional_differ():
    tokens = padded(ROWS, 8)
    causal = text_transformer("mu", **TINY, causal=True)
    both_ways = text_transformer("mu", **TINY, causal=False)
    variables = init(causal, tokens)
    difference = np.abs(apply(causal, variables, tokens) - apply(both_ways, variables, tokens))
    # One-token rows see only themselves either way; longer rows differ.
    assert difference[3].max() < 1e-6 and difference[:3].max(axis=1).min() > 1e-3


def test_eos_pooling_ignores_tokens_after_it_only_through_the_mask():
    # Causal + eos: changing a token before the end changes the features; the end token sees all.
    model = text_transformer("mu", **TINY)
    tokens = padded(ROWS, 8)
    variables = init(model, tokens)
    changed = tokens.at[0, 0].set(17)
    out, out_changed = apply(model, variables, tokens), apply(model, variables, changed)
    assert np.abs(out[0] - out_changed[0]).max() > 1e-3
    np.testing.assert_allclose(out[1:], out_changed[1:], atol=1e-6)


def test_too_long_is_an_error():
    model = text_transformer("mu", **TINY)
    with pytest.raises(ValueError, match="13 tokens exceed max_len 12"):
        init(model, jnp.ones((1, 13), jnp.int32))


def test_clip_defaults():
    model = text_transformer("B")
    assert (model.vocab_size, model.max_len, model.causal, model.pool) == (49_408, 77, True, "eos")
