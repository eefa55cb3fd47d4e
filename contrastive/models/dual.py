"""Contrastive wrappers: a two-tower image-text model and a one-tower two-view model."""
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from contrastive.models.heads import LinearHead, MLPHead, l2_normalize

Dtype = Any


class DualEncoder(nn.Module):
    """CLIP / SigLIP dual encoder.

    x = normalize(image_tower(images) W_img), y = normalize(text_tower(tokens) W_txt), both
    (B, embed_dim) with unit rows. The score matrix the losses use is S = scale * x y^T (+ bias)
    with scale = exp(log_scale): log_scale starts at log(1/0.07) (CLIP), bias at -10 (SigLIP).
    A loss that ignores the bias simply gives it zero gradient.
    With `mlp_head_dim` > 0 each W is instead an MLP, (head_depth - 1) x [Dense(mlp_head_dim)
    -> relu] -> Dense(embed_dim), no batch norm ("Investigating the Benefits of Projection Head
    for Representation Learning", Xue et al. 2024; SimCLR's head without its BN).
    Towers are any modules called as tower(inputs, train) -> (B, D), with their own dtype;
    `dtype` here is the heads' compute dtype. head_bias: projections with a bias (big_vision's
    SigLIP heads; CLIP's have none). pixel_mean, pixel_std: how integer pixels are normalised
    on the device, per channel, (p/255 - mean)/std (OpenCLIP's models want OpenAI's or
    ImageNet's statistics, see `contrastive.convert`).
    captioner: CoCa's decoder (`models.Captioner`), reading the image tower's patch tokens
    (the tower needs a `pooled_and_tokens` method: the ViT); None (default): no decoder, no
    parameters for it, and the model returns (x, y) only.
    """

    image_tower: nn.Module
    text_tower: nn.Module
    embed_dim: int
    temperature_init: float = 0.07
    bias_init: float = -10.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    mlp_head_dim: int = 0  # 0: CLIP's linear projections; > 0: MLP heads of this hidden width
    head_depth: int = 2  # layers of the MLP heads
    head_bias: bool = False
    pixel_mean: tuple = (0.5, 0.5, 0.5)
    pixel_std: tuple = (0.5, 0.5, 0.5)
    captioner: nn.Module | None = None

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.mlp_head_dim:
            head = lambda: MLPHead(self.mlp_head_dim, self.embed_dim, depth=self.head_depth,
                                   batch_norm=False, **kw)
        else:
            head = lambda: LinearHead(self.embed_dim, self.head_bias, **kw)
        self.image_head, self.text_head = head(), head()
        scalar = lambda value: nn.with_logical_partitioning(nn.initializers.constant(value), ())
        self.log_scale = self.param(
            "log_scale", scalar(math.log(1.0 / self.temperature_init)), (), self.param_dtype
        )
        self.bias = self.param("bias", scalar(self.bias_init), (), self.param_dtype)

    def _pixels(self, images):
        """Integer (uint8) pixels p normalised here, on the device: (p/255 - pixel_mean) /
        pixel_std. Float inputs are the host's (p/255 - 0.5)/0.5; a model with other
        statistics (OpenCLIP's) renormalises them to its own, so every data path feeds it what
        it was trained on."""
        # One value for all channels stays a scalar (grayscale inputs broadcast against it).
        per_channel = lambda v: v[0] if len(set(v)) == 1 else jnp.asarray(v, jnp.float32)
        mean, std = per_channel(self.pixel_mean), per_channel(self.pixel_std)
        if jnp.issubdtype(images.dtype, jnp.integer):
            images = (images.astype(jnp.float32) / 255.0 - mean) / std
        elif (tuple(self.pixel_mean), tuple(self.pixel_std)) != ((0.5,) * 3, (0.5,) * 3):
            images = ((images * 0.5 + 0.5) - mean) / std
        return images

    def embed_images(self, images, train: bool = False):
        """(B, H, W, C) -> (B, embed_dim) unit rows, float32 (pixels as `_pixels` says)."""
        return l2_normalize(self.image_head(self.image_tower(self._pixels(images), train), train))

    def embed_texts(self, tokens, train: bool = False):
        """(B, L) -> (B, embed_dim) unit rows, float32."""
        return l2_normalize(self.text_head(self.text_tower(tokens, train), train))

    def image_tokens(self, images, train: bool = False):
        """(B, H, W, C) -> the image tower's patch tokens (B, T, width), the captioner's input."""
        return self.image_tower.pooled_and_tokens(self._pixels(images), train)[1]

    def caption_logits(self, image_tokens, tokens):
        """(B, T, width) image tokens, (B, L) tokens -> (B, L, vocab) next-token logits."""
        return self.captioner(image_tokens, tokens)

    def __call__(self, images, tokens, train: bool = False):
        """(image embeddings, text embeddings), each (B, embed_dim); with a captioner also the
        caption's next-token logits (B, L, vocab), from one pass of the image tower."""
        if self.captioner is None:
            return self.embed_images(images, train), self.embed_texts(tokens, train)
        pooled, patches = self.image_tower.pooled_and_tokens(self._pixels(images), train)
        x = l2_normalize(self.image_head(pooled, train))
        return x, self.embed_texts(tokens, train), self.captioner(patches, tokens)


class SiameseEncoder(nn.Module):
    """SimCLR-style encoder: one tower and one head shared by two augmented views.

    Both views go through in one batch of 2B, so batch norm sees both (as in SimCLR).
    With `prototypes` (SwAV's `Prototypes`), the views' outputs are their scores against the
    prototypes, (B, K), instead of the unit embeddings; `features` and `embed` are unchanged.
    """

    encoder: nn.Module
    head: nn.Module
    prototypes: nn.Module | None = None

    def features(self, x, train: bool = False):
        """The tower's features (B, D), for linear probes and kNN."""
        return self.encoder(x, train)

    def embed(self, x, train: bool = False):
        """(B, ...) -> (B, out_dim) unit rows, float32."""
        return l2_normalize(self.head(self.encoder(x, train), train))

    def __call__(self, view1, view2, *more_views, train: bool = False):
        """Two views (B, ...) -> (z1, z2), each (B, out_dim) with unit rows; V > 2 views ->
        (z1, (B, V - 1, out_dim) the others), one batch of V B through the tower. With
        prototypes, the same shapes with K (the prototypes' scores) for out_dim."""
        b = view1.shape[0]
        z = self.embed(jnp.concatenate((view1, view2) + more_views, axis=0), train)
        if self.prototypes is not None:
            z = self.prototypes(z)
        if not more_views:
            return z[:b], z[b:]
        return z[:b], jnp.swapaxes(z[b:].reshape(1 + len(more_views), b, -1), 0, 1)
