"""Vision Transformer image tower (Dosovitskiy et al. 2021), sized as in CLIP / SigLIP.

images (B, H, W, C) -> patches (B, N, D), N = (H/p)(W/p) -> pre-LN Transformer -> pooled (B, D).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from contrastive.models.transformer import MlpBlock, MultiHeadAttention, Transformer, layer_norm

Dtype = Any

# Width D, depth, MLP width F and heads, as in big_vision's ViT (the SigLIP paper's sizes).
VIT_SIZES = {
    "mu": dict(width=32, depth=1, mlp_dim=128, num_heads=2),
    "Ti": dict(width=192, depth=12, mlp_dim=768, num_heads=3),
    "S": dict(width=384, depth=12, mlp_dim=1536, num_heads=6),
    "M": dict(width=512, depth=12, mlp_dim=2048, num_heads=8),
    "B": dict(width=768, depth=12, mlp_dim=3072, num_heads=12),
    "L": dict(width=1024, depth=24, mlp_dim=4096, num_heads=16),
    "So400m": dict(width=1152, depth=27, mlp_dim=4304, num_heads=16),
    "H": dict(width=1280, depth=32, mlp_dim=5120, num_heads=16),
    "g": dict(width=1408, depth=40, mlp_dim=6144, num_heads=16),
}


def sincos_2d(height: int, width: int, dim: int, temperature: float = 10_000.0) -> np.ndarray:
    """Fixed 2-d sine-cosine position embedding, (height * width, dim) (MoCo v3, big_vision).

    A quarter of the channels each hold sin(x w), cos(x w), sin(y w), cos(y w) for the
    frequencies w_k = temperature^(-k / (dim/4 - 1)), k = 0 .. dim/4 - 1.
    """
    if dim % 4:
        raise ValueError(f"sincos_2d needs a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / temperature ** (np.arange(quarter) / max(quarter - 1, 1))
    y, x = np.mgrid[:height, :width]
    x = x.reshape(-1, 1) * omega
    y = y.reshape(-1, 1) * omega
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1).astype(np.float32)


def drop_patches(x, rate: float, rng, num_prefix: int = 0):
    """FLIP's patch dropout (Li et al. 2023, "Scaling Language-Image Pre-training via Masking"):
    each example keeps a uniformly random K = max(1, round(N (1 - rate))) of its N patch
    tokens (after their position embeddings are added), so the encoder runs on K tokens.

    x: (B, num_prefix + N, D); the first num_prefix tokens (the class token) are always kept.
    Returns (B, num_prefix + K, D), the kept patches in their original order."""
    batch, length, _ = x.shape
    n = length - num_prefix
    keep = max(1, round(n * (1.0 - rate)))
    if keep >= n:
        return x
    noise = jax.random.uniform(rng, (batch, n))
    index = jnp.sort(jnp.argsort(noise, axis=1)[:, :keep], axis=1) + num_prefix
    kept = jnp.take_along_axis(x, index[:, :, None], axis=1)
    return jnp.concatenate([x[:, :num_prefix], kept], axis=1)


class MAPHead(nn.Module):
    """Multihead attention pooling (SigLIP): a learned probe attends over the tokens.

    (B, N, D) -> (B, D): z = Attn(probe, x); out = z + MLP(LN(z)).
    """

    mlp_dim: int
    num_heads: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    act: str = "gelu_tanh"
    norm_eps: float = 1e-6

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        probe = self.param(
            "probe",
            nn.with_logical_partitioning(nn.initializers.xavier_uniform(), (None, None, "embed")),
            (1, 1, width),
            self.param_dtype,
        )
        probe = jnp.broadcast_to(probe.astype(self.dtype), (x.shape[0], 1, width))
        z = MultiHeadAttention(self.num_heads, self.dtype, self.param_dtype, name="attn")(probe, x)
        y = layer_norm(self.dtype, self.param_dtype, "ln", self.norm_eps)(z)
        z = z + MlpBlock(self.mlp_dim, self.dtype, self.param_dtype, self.act, name="mlp")(y)
        return z[:, 0]


class ViT(nn.Module):
    """Vision Transformer: (B, H, W, C) images -> (B, width) features.

    pool: "cls" (a learned class token, as CLIP), "gap" (mean over patches) or "map"
      (multihead attention pooling, as SigLIP).
    posemb: "learn" (a learned table, fixed to the init image size) or "sincos2d" (fixed).
    patch_dropout: in training, the fraction of patch tokens dropped at random per example
      (FLIP, `drop_patches`; 0.5 halves the encoder's tokens); needs a "dropout" rng. 0: off.
    Options published models need (defaults are big_vision's): act, the MLP nonlinearity
    ("gelu" for OpenCLIP and timm, "quick_gelu" for OpenAI's CLIP); norm_eps (1e-5 for
    PyTorch models); pre_norm, a LayerNorm on the embedded tokens before the first block
    (CLIP's ln_pre); patch_bias=False, a patch projection without bias (CLIP's conv1).
    """

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    patch_size: int = 16
    pool: str = "cls"
    posemb: str = "learn"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: bool = False
    scan: bool = False  # Transformer.scan: the blocks as one nn.scan (pod-scale memory)
    head_chunks: int = 1  # Transformer.head_chunks: attention heads in sequential groups
    patch_dropout: float = 0.0
    act: str = "gelu_tanh"
    norm_eps: float = 1e-6
    pre_norm: bool = False
    patch_bias: bool = True

    def __call__(self, images, train: bool = False):
        """(B, H, W, C) -> (B, width) pooled features."""
        return self.pooled_and_tokens(images, train)[0]

    @nn.compact
    def pooled_and_tokens(self, images, train: bool = False):
        """((B, width) pooled features, (B, T, width) the encoder's patch tokens after its final
        LayerNorm, without the class token; T = N, or the K kept under patch dropout). The same
        parameters as `__call__`, which returns the first of these."""
        if not 0 <= self.patch_dropout < 1:
            raise ValueError(f"patch_dropout must be in [0, 1), got {self.patch_dropout!r}")
        if self.pool not in ("cls", "gap", "map"):
            raise ValueError(f"pool must be 'cls', 'gap' or 'map', got {self.pool!r}")
        if self.posemb not in ("learn", "sincos2d"):
            raise ValueError(f"posemb must be 'learn' or 'sincos2d', got {self.posemb!r}")
        p = self.patch_size
        x = nn.Conv(
            self.width,
            (p, p),
            strides=(p, p),
            padding="VALID",
            use_bias=self.patch_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(
                nn.initializers.lecun_normal(), (None, None, None, "embed")
            ),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
            name="patch_embed",
        )(images.astype(self.dtype))
        batch, grid_h, grid_w, _ = x.shape
        x = x.reshape(batch, grid_h * grid_w, self.width)

        if self.posemb == "sincos2d":
            x = x + sincos_2d(grid_h, grid_w, self.width).astype(self.dtype)
        if self.pool == "cls":
            cls = self.param(
                "cls",
                nn.with_logical_partitioning(nn.initializers.zeros_init(), (None, None, "embed")),
                (1, 1, self.width),
                self.param_dtype,
            )
            cls = jnp.broadcast_to(cls.astype(self.dtype), (batch, 1, self.width))
            x = jnp.concatenate([cls, x], axis=1)
        if self.posemb == "learn":
            table = self.param(
                "posemb",
                nn.with_logical_partitioning(
                    nn.initializers.normal(stddev=self.width**-0.5), (None, "length", "embed")
                ),
                (1, x.shape[1], self.width),
                self.param_dtype,
            )
            x = x + table.astype(self.dtype)
        if train and self.patch_dropout:
            x = drop_patches(x, self.patch_dropout, self.make_rng("dropout"),
                             num_prefix=int(self.pool == "cls"))
        if self.pre_norm:
            x = layer_norm(self.dtype, self.param_dtype, "pre_norm", self.norm_eps)(x)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

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
        )(x)

        tokens = x[:, 1:] if self.pool == "cls" else x
        if self.pool == "cls":
            x = x[:, 0]
        elif self.pool == "gap":
            x = jnp.mean(x, axis=1)
        else:
            x = MAPHead(self.mlp_dim, self.num_heads, self.dtype, self.param_dtype, self.act,
                        self.norm_eps, name="map")(x)
        return nn.with_logical_constraint(x, ("batch", "embed")), tokens


def vit(name: str, **overrides) -> ViT:
    """A ViT by name: "B/16" is size B with 16x16 patches; `overrides` set any other field.

    >>> vit("L/14", pool="map", dtype=jnp.bfloat16)
    >>> vit("mu/2")  # a tiny model for 8x8 inputs on CPU
    """
    size, _, patch = name.partition("/")
    if size not in VIT_SIZES:
        raise ValueError(f"unknown ViT size {size!r}; known sizes: {', '.join(VIT_SIZES)}")
    fields = dict(VIT_SIZES[size])
    if patch:
        fields["patch_size"] = int(patch)
    fields.update(overrides)
    return ViT(**fields)
