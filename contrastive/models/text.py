"""Text Transformer tower (CLIP's, Radford et al. 2021), causal or bidirectional.

tokens (B, L) int -> token + position embeddings (B, L, D) -> pre-LN Transformer -> pooled (B, D).
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from contrastive.models.transformer import Transformer

Dtype = Any

# Width D, depth, MLP width F and heads of CLIP's text towers (OpenCLIP's for H and G).
TEXT_SIZES = {
    "mu": dict(width=32, depth=1, mlp_dim=128, num_heads=2),
    "B": dict(width=512, depth=12, mlp_dim=2048, num_heads=8),  # CLIP ViT-B/32, B/16: 63M
    "L": dict(width=768, depth=12, mlp_dim=3072, num_heads=12),  # CLIP ViT-L/14: 123M
    "H": dict(width=1024, depth=24, mlp_dim=4096, num_heads=16),  # OpenCLIP ViT-H/14: 354M
    "G": dict(width=1280, depth=32, mlp_dim=5120, num_heads=20),  # OpenCLIP ViT-bigG/14
    "So400m": dict(width=1152, depth=27, mlp_dim=4304, num_heads=16),  # SigLIP So400m/14
}


class TextTransformer(nn.Module):
    """Text tower: (B, L) token ids, L <= max_len, -> (B, width) features.

    Tokens equal to `pad_id` are padding: no position attends to them.
    causal: position i attends to positions <= i only (CLIP) instead of to all (SigLIP).
    pool: "eos", the features at the last non-padding token (CLIP's end-of-text token, since
      CLIP pads with 0 after it), "mean" over the non-padding tokens, or "last", the features
      at the last position whatever it holds (big_vision's SigLIP).
    mask_padding: False lets every position attend to padding tokens too, as OpenCLIP's and
      big_vision's towers do (under a causal mask and "eos" pooling this changes nothing
      unless pad_id occurs inside a text: CLIP's token 0 is "!").
    act, norm_eps: the MLP nonlinearity and LayerNorm epsilon (see `ViT`).
    """

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    vocab_size: int = 49_408
    max_len: int = 77
    causal: bool = True
    pool: str = "eos"
    pad_id: int = 0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: bool = False
    scan: bool = False  # Transformer.scan: the blocks as one nn.scan (pod-scale memory)
    head_chunks: int = 1  # Transformer.head_chunks: attention heads in sequential groups
    mask_padding: bool = True
    act: str = "gelu_tanh"
    norm_eps: float = 1e-6

    @nn.compact
    def __call__(self, tokens, train: bool = False):
        del train  # no dropout in this tower
        if self.pool not in ("eos", "mean", "last"):
            raise ValueError(f"pool must be 'eos', 'mean' or 'last', got {self.pool!r}")
        length = tokens.shape[-1]
        if length > self.max_len:
            raise ValueError(f"{length} tokens exceed max_len {self.max_len}")
        x = nn.Embed(
            self.vocab_size,
            self.width,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            embedding_init=nn.with_logical_partitioning(
                nn.initializers.normal(stddev=0.02), ("vocab", "embed")
            ),
            name="token_embed",
        )(tokens)
        positions = self.param(
            "posemb",
            nn.with_logical_partitioning(nn.initializers.normal(stddev=0.01), ("length", "embed")),
            (self.max_len, self.width),
            self.param_dtype,
        )
        x = x + positions[:length].astype(self.dtype)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

        valid = tokens != self.pad_id  # (B, L)
        mask = valid[:, None, None, :] if self.mask_padding else None  # keys: (B, 1, 1, L)
        if self.causal:
            causal = nn.make_causal_mask(tokens, dtype=bool)
            mask = causal if mask is None else mask & causal
        x = Transformer(
            self.depth,
            self.mlp_dim,
            self.num_heads,
            self.dtype,
            self.param_dtype,
            self.remat,
            self.scan,
            self.head_chunks,
            self.act,
            self.norm_eps,
            name="encoder",
        )(x, mask)

        if self.pool == "eos":
            last = jnp.max(jnp.where(valid, jnp.arange(length), 0), axis=-1)  # (B,)
            x = jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]
        elif self.pool == "last":
            x = x[:, -1]
        else:
            weights = valid.astype(x.dtype)[..., None]
            x = jnp.sum(x * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1)
        return nn.with_logical_constraint(x, ("batch", "embed"))


def text_transformer(name: str, **overrides) -> TextTransformer:
    """A text tower by name ("B" is CLIP's 63M tower); `overrides` set any other field.

    >>> text_transformer("B", causal=False, pool="mean", vocab_size=32_000, max_len=64)
    """
    if name not in TEXT_SIZES:
        raise ValueError(f"unknown text size {name!r}; known sizes: {', '.join(TEXT_SIZES)}")
    return TextTransformer(**{**TEXT_SIZES[name], **overrides})
