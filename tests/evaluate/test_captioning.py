"""Greedy captions (a hand-made decoder, and a tiny CoCa fitted to one caption) and their
scores against hand-computed values; digits_coca through the trainer."""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import digits_coca
from contrastive import task as task_lib
from contrastive.data import tokenizer as tokenizer_lib
from contrastive.evaluate import captioning
from contrastive.train import loop

PAD, EOS, V = 0, 9, 10


def _count_up(first):
    """A hand-made causal decoder: the token after p is p + 1, and 9 (the end) after 8; the
    first token is first + 1. Padding always scores highest (greedy must never choose it)."""

    def logits_fn(tokens):
        previous = jnp.concatenate([first[:, None], tokens[:, :-1]], axis=1)
        nxt = jnp.where(previous >= 8, EOS, previous + 1)
        return 5.0 * jax.nn.one_hot(nxt, V) + 10.0 * jax.nn.one_hot(jnp.zeros_like(nxt), V)

    return logits_fn


def test_greedy_decoding_feeds_back_its_tokens_and_pads_after_the_end():
    tokens = jax.jit(lambda f: captioning.greedy_decode(_count_up(f), 2, 8, PAD, EOS))(
        jnp.array([3, 6]))
    np.testing.assert_array_equal(tokens, [[4, 5, 6, 7, 8, 9, 0, 0], [7, 8, 9, 0, 0, 0, 0, 0]])
    # Without an end token nothing stops the chain: 9 follows 8 and 9.
    no_end = captioning.greedy_decode(_count_up(jnp.array([6])), 1, 5, PAD, None)
    np.testing.assert_array_equal(no_end, [[7, 8, 9, 9, 9]])
    # Ids from vocab_size on are never chosen: with 8 ids 8 and 9 are out; the best of the
    # rest (all score 0 but padding) is the first, 1.
    capped = captioning.greedy_decode(_count_up(jnp.array([6])), 1, 3, PAD, EOS, vocab_size=8)
    np.testing.assert_array_equal(capped, [[7, 1, 2]])


def test_caption_metrics_against_hand_computed_values():
    refs = [np.array([[5, 6, 7, 2, 0], [3, 4, 2, 0, 0]]), np.array([[5, 6, 7, 8, 2]])]
    generated = np.array([[3, 4, 2, 0, 0],  # the second reference exactly
                          [5, 6, 1, 2, 0]])  # 2 of the 5 tokens of its only reference
    metrics = captioning.caption_metrics(generated, refs, PAD)
    assert metrics["caption_exact_match"] == 0.5
    assert metrics["caption_token_accuracy"] == pytest.approx((1.0 + 2 / 5) / 2)
    # Best-matching reference: 5 6 7 1 0 matches 3 of 4 of the first, 0 of 3 of the second.
    one = captioning.caption_metrics(np.array([[5, 6, 7, 1, 0]]), refs[:1], PAD)
    assert one == {"caption_exact_match": 0.0, "caption_token_accuracy": 0.75}
    with pytest.raises(ValueError, match="2 generated captions for 1 images"):
        captioning.caption_metrics(generated, refs[:1], PAD)


def test_end_ids_of_the_tokenizers():
    assert captioning.end_id(tokenizer_lib.WordTokenizer(["a"], 4)) == tokenizer_lib.EOS_ID

    class NoEnd:
        eos_id = None

    assert captioning.end_id(NoEnd()) is None


@pytest.mark.slow  # ~10 s: 60 optimiser steps and a decoding compiled
def test_a_coca_fitted_to_two_captions_generates_them():
    config = digits_coca.get_config()
    config.model.image_options = {"width": 16, "mlp_dim": 32, "num_heads": 2, "depth": 1}
    config.model.text_options = {"width": 16, "mlp_dim": 32, "num_heads": 2, "depth": 1}
    config.model.captioner = {"width": 32, "depth": 1, "mlp_dim": 64, "num_heads": 2}
    config.data.max_len = 8
    task = task_lib.make_task(config, 12)
    caption = jnp.array([[5, 3, 7, 4, 2, 0, 0, 0], [6, 6, 9, 2, 0, 0, 0, 0]])
    images = jnp.stack([jnp.full((8, 8, 1), -1.0), jnp.full((8, 8, 1), 1.0)])
    batch = {"image": images, "tokens": caption}
    params = nn.meta.unbox(task.model.init(jax.random.PRNGKey(0), images, caption))["params"]
    optimizer = optax.adam(1e-2)

    @jax.jit
    def fit(params):
        def update(carry, _):
            params, opt_state = carry
            loss = lambda p: jnp.mean(task.embed(p, {}, batch)[0][2]["caption_loss"])
            grads = jax.grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(update, (params, optimizer.init(params)), None, length=60)[0][0]

    generate = captioning.caption_generator(task, 8, 0, 2)
    # Two images, two captions: the decoder must read the image to tell them apart.
    np.testing.assert_array_equal(jax.jit(generate)(fit(params), {}, images), caption)


@pytest.mark.slow  # ~15-30 s: a trainer run (compiles, data, a checkpoint, an evaluation)
def test_digits_coca_trains_and_scores_its_captions(tmp_path, digits_data_dir):
    config = digits_coca.get_config("runlocal")
    config.total_steps = config.eval_every = 2
    config.progress_bar = config.plots = False
    config.eval.knn = config.eval.retrieval = config.eval.geometry = False
    config.eval.zero_shot = False  # the caption metrics only
    tower = {"width": 16, "mlp_dim": 32, "num_heads": 2, "depth": 1}
    config.model.image_options = config.model.text_options = config.model.captioner = tower
    config.data.data_dir = digits_data_dir
    summary = loop.train_and_evaluate(config, str(tmp_path))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]
    for line in lines:  # the objective is the contrastive loss + 1.0 x the caption loss
        assert line["loss"] == pytest.approx(line["contrastive_loss"] + line["caption_loss"],
                                             rel=1e-5)
    # Untrained: the caption loss is near log(vocabulary) (the table's 64 rows).
    assert abs(lines[0]["caption_loss"] - np.log(64)) < 1.0
    assert 0.0 <= summary["caption_exact_match"] <= summary["caption_token_accuracy"] <= 1.0
    examples = json.loads((tmp_path / "captions.json").read_text())
    assert examples["step"] == 2 and len(examples["examples"]) == 16
    assert len(examples["examples"][0]["references"]) == 6  # every digits template
