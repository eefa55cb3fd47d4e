"""CoCa's captioning decoder (Yu et al. 2022, "CoCa: Contrastive Captioners are Image-Text
Foundation Models"), beside a dual encoder's contrastive towers.

image tokens (B, T, D_img) and caption tokens (B, L) -> next-token logits (B, L, V): a causal
pre-LN Transformer whose blocks also cross-attend to the (normalised, projected) image tokens.
Position t reads a learned start embedding and tokens[:, :t], and predicts tokens[:, t]; the
logits are the final features times the decoder's own token embedding (tied).
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import optax

from contrastive.models.transformer import MlpBlock, MultiHeadAttention, layer_norm

Dtype = Any


class DecoderBlock(nn.Module):
    """x + SelfAttn(LN(x), causal), x + CrossAttn(LN(x), image), x + MLP(LN(x))."""

    mlp_dim: int
    num_heads: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    act: str = "gelu_tanh"
    norm_eps: float = 1e-6

    @nn.compact
    def __call__(self, x, image, mask):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        names = ("batch", "length", "embed")
        y = layer_norm(self.dtype, self.param_dtype, "ln1", self.norm_eps)(x)
        x = nn.with_logical_constraint(
            x + MultiHeadAttention(self.num_heads, **kw, name="self_attn")(y, y, mask), names)
        y = layer_norm(self.dtype, self.param_dtype, "ln2", self.norm_eps)(x)
        x = nn.with_logical_constraint(
            x + MultiHeadAttention(self.num_heads, **kw, name="cross_attn")(y, image), names)
        y = layer_norm(self.dtype, self.param_dtype, "ln3", self.norm_eps)(x)
        y = MlpBlock(self.mlp_dim, self.dtype, self.param_dtype, self.act, name="mlp")(y)
        return nn.with_logical_constraint(x + y, names)


class Captioner(nn.Module):
    """(image tokens (B, T, D_img), tokens (B, L), L <= max_len) -> logits (B, L, vocab_size),
    float32; logits[:, t] depends on tokens[:, :t] only (and on every image token).

    No padding mask: under the causal mask a position never sees the padding after its
    caption, and the loss ignores the positions whose target is padding."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    vocab_size: int
    max_len: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    act: str = "gelu_tanh"
    norm_eps: float = 1e-6

    @nn.compact
    def __call__(self, image_tokens, tokens):
        length = tokens.shape[-1]
        if length > self.max_len:
            raise ValueError(f"{length} tokens exceed the captioner's max_len {self.max_len}")
        embed = nn.Embed(
            self.vocab_size, self.width, dtype=self.dtype, param_dtype=self.param_dtype,
            embedding_init=nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02),
                                                        ("vocab", "embed")),
            name="token_embed")
        start = self.param(
            "start", nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02),
                                                  (None, None, "embed")),
            (1, 1, self.width), self.param_dtype)
        positions = self.param(
            "posemb", nn.with_logical_partitioning(nn.initializers.normal(stddev=0.01),
                                                   ("length", "embed")),
            (self.max_len, self.width), self.param_dtype)
        # Shifted right: the start embedding, then every token but the last.
        start = jnp.broadcast_to(start.astype(self.dtype), (tokens.shape[0], 1, self.width))
        x = jnp.concatenate([start, embed(tokens[:, :-1])], axis=1)
        x = x + positions[:length].astype(self.dtype)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

        image = layer_norm(self.dtype, self.param_dtype, "image_norm", self.norm_eps)(
            image_tokens)
        image = nn.Dense(
            self.width, dtype=self.dtype, param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                     ("embed", None)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (None,)),
            name="image_proj")(image)
        image = nn.with_logical_constraint(image, ("batch", "length", "embed"))

        mask = nn.make_causal_mask(tokens, dtype=bool)  # (B, 1, L, L)
        for i in range(self.depth):
            x = DecoderBlock(self.mlp_dim, self.num_heads, self.dtype, self.param_dtype,
                             self.act, self.norm_eps, name=f"block{i}")(x, image, mask)
        x = layer_norm(self.dtype, self.param_dtype, "final_norm", self.norm_eps)(x)
        logits = embed.attend(x).astype(jnp.float32)
        return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


# What model.captioner may set (the Captioner's fields but the vocabulary and length).
CAPTIONER_FIELDS = ("width", "depth", "mlp_dim", "num_heads", "act", "norm_eps")


def make_captioner(options: dict, vocab_size: int, max_len: int, dtype) -> Captioner:
    """A Captioner from the config's model.captioner `options`; ValueError naming the field
    for an unknown one or a size that is not a positive integer."""
    unknown = sorted(set(options) - set(CAPTIONER_FIELDS))
    if unknown:
        raise ValueError(f"model.captioner: unknown fields {unknown}; known: {CAPTIONER_FIELDS}")
    for name in CAPTIONER_FIELDS[:4]:
        value = options.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model.captioner.{name} must be an integer >= 1, got {value!r}")
    return Captioner(vocab_size=vocab_size, max_len=max_len, dtype=dtype, **options)


def caption_cross_entropy(logits, tokens, pad_id: int):
    """Per-example teacher-forced next-token cross-entropy, (B,) float32:
    CE_i = sum_t m_it (-log softmax(logits_it)[tokens_it]) / max(sum_t m_it, 1),
    m_it = [tokens_it != pad_id]: the mean over the caption's own (non-padding) tokens, so a
    batch's loss, mean_i CE_i, is a sum over examples (it splits over micro-batches)."""
    mask = (tokens != pad_id).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), tokens)
    return jnp.sum(ce * mask, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
