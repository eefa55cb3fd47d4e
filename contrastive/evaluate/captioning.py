"""CoCa's captions of held-out images: greedy decoding and its scores against references.

  greedy_decode         tokens (B, L) from a next-token logits function, one position at a
                        time (the decoder re-run on the whole prefix; no KV cache)
  caption_generator     (params, model_state, images) -> tokens, for a task with a captioner
  caption_metrics       exact match against any reference, and position-wise token accuracy
                        against the best-matching one (NumPy)
"""
import jax
import jax.numpy as jnp
import numpy as np

from contrastive.data import tokenizer as tokenizer_lib


def end_id(tokenizer) -> int | None:
    """The tokenizer's end-of-text id (after it only padding follows), or None if it has none."""
    for name in ("eos_id", "eot_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return tokenizer_lib.EOS_ID if isinstance(tokenizer, tokenizer_lib.WordTokenizer) else None


def greedy_decode(logits_fn, batch: int, length: int, pad_id: int, eos_id: int | None = None,
                  vocab_size: int | None = None):
    """(batch, length) int32 tokens: token t = argmax logits_fn(tokens)[:, t], t = 0 .. L-1,
    where logits_fn maps (B, L) tokens to (B, L, V) causal next-token logits (position t reads
    tokens[:, :t] only, so the not-yet-decoded positions, padding, are never read). Neither
    padding nor an id >= vocab_size (the rows a model's table has beyond the tokenizer's) is
    ever chosen; after eos_id a row holds padding, as a tokenizer's encoding does."""
    tokens = jnp.full((batch, length), pad_id, jnp.int32)
    done = jnp.zeros((batch,), bool)

    def step(t, carry):
        tokens, done = carry
        logits = jax.lax.dynamic_index_in_dim(logits_fn(tokens), t, axis=1, keepdims=False)
        logits = logits.astype(jnp.float32).at[:, pad_id].set(-jnp.inf)
        if vocab_size is not None:
            logits = logits.at[:, vocab_size:].set(-jnp.inf)
        token = jnp.where(done, pad_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        tokens = jax.lax.dynamic_update_index_in_dim(tokens, token, t, axis=1)
        return tokens, done if eos_id is None else done | (token == eos_id)

    tokens, _ = jax.lax.fori_loop(0, length, step, (tokens, done))
    return tokens


def caption_generator(task, length: int, pad_id: int, eos_id: int | None,
                      vocab_size: int | None = None):
    """generate(params, model_state, images) -> (B, length) greedy caption tokens (of ids <
    vocab_size, the tokenizer's): the image tower runs once, the decoder once per position."""

    def generate(params, model_state, images):
        image_tokens = task.image_tokens(params, model_state, images)
        logits_fn = lambda tokens: task.caption_logits(params, model_state, image_tokens, tokens)
        return greedy_decode(logits_fn, images.shape[0], length, pad_id, eos_id, vocab_size)

    return generate


def caption_metrics(generated: np.ndarray, references: list, pad_id: int) -> dict:
    """{"caption_exact_match", "caption_token_accuracy"} of (N, L) generated tokens against
    references[i], the (R_i, L) tokenized reference captions of image i (padding after each).

    exact match: the generated row equals one of its references, token for token.
    token accuracy: per image, the best over its references r of the fraction of r's
    non-padding positions t (its end token included) where generated[t] == r[t]; averaged."""
    generated = np.asarray(generated)
    if len(generated) != len(references) or not len(generated):
        raise ValueError(f"{len(generated)} generated captions for {len(references)} images")
    exact, accuracy = [], []
    for row, refs in zip(generated, references):
        refs = np.asarray(refs)
        valid = refs != pad_id  # (R, L)
        hits = (refs == row[None]) & valid
        exact.append(bool(np.any(np.all(refs == row[None], axis=1))))
        accuracy.append(float(np.max(hits.sum(1) / np.maximum(valid.sum(1), 1))))
    return {"caption_exact_match": float(np.mean(exact)),
            "caption_token_accuracy": float(np.mean(accuracy))}
