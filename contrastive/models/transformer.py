"""Pre-LN Transformer pieces shared by the ViT and the text tower.

Shapes: B batch, L length, D width, H heads, K = D / H per-head width, F MLP width.
Parameters carry logical axis names; activations are constrained with logical names too, so a
rules table (``contrastive.parallel.rules``) alone decides how both are laid out on a mesh.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

# Xavier-uniform kernels and zero biases, as in big_vision's ViT.
_kernel_init = nn.initializers.xavier_uniform()
_zeros = nn.initializers.zeros_init()

# The MLP's nonlinearity, by the name a model config gives it: big_vision uses flax's tanh
# approximation of GELU (our default), OpenCLIP and timm the exact erf form, OpenAI's CLIP
# weights x sigmoid(1.702 x) ("QuickGELU", Hendrycks & Gimpel 2016).
ACTIVATIONS = {
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "quick_gelu": lambda x: x * nn.sigmoid(1.702 * x),
}


def activation(name: str):
    """The function ACTIVATIONS names; a one-line error for any other name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class MultiHeadAttention(nn.Module):
    """softmax(Q K^T / sqrt(K) + mask) V per head, then an output projection.

    q = x_q W_q: (B, Lq, D) -> (B, Lq, H, K); k, v likewise from x_kv (B, Lkv, D).
    mask: boolean, broadcastable to (B, H, Lq, Lkv), True where attention is allowed.
    Returns (B, Lq, D).
    """

    num_heads: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    head_chunks: int = 1  # > 1: the heads in this many groups, one after another (see below)

    @nn.compact
    def __call__(self, x_q, x_kv, mask=None):
        width = x_q.shape[-1]
        if width % self.num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {self.num_heads}")
        head_dim = width // self.num_heads

        def param(name, init, names, shape):
            value = self.param(name, nn.with_logical_partitioning(init, names), shape,
                               self.param_dtype)
            return value.astype(self.dtype)

        # Kernels are kept 3-d, (D, H, K) and (H, K, D), so each axis carries its own name; the
        # Xavier fans are D and H*K, as for the equivalent (D, H*K) matrix.
        in_init = nn.initializers.xavier_uniform(in_axis=0, out_axis=(1, 2))
        out_init = nn.initializers.xavier_uniform(in_axis=(0, 1), out_axis=2)

        def project(name, x):
            kernel = param(f"{name}_kernel", in_init, ("embed", "heads", "kv"),
                           (width, self.num_heads, head_dim))
            bias = param(f"{name}_bias", _zeros, ("heads", "kv"), (self.num_heads, head_dim))
            y = jnp.einsum("bld,dhk->blhk", x.astype(self.dtype), kernel) + bias
            return nn.with_logical_constraint(y, ("batch", "length", "heads", "kv"))

        q, k, v = project("query", x_q), project("key", x_kv), project("value", x_kv)
        # The softmax runs in float32 whatever the compute dtype: bf16 logits lose the small
        # differences between attention scores that decide where the mass goes.
        out = chunked_attention(q, k, v, mask, self.dtype, self.head_chunks)
        out = nn.with_logical_constraint(out, ("batch", "length", "heads", "kv"))
        kernel = param("out_kernel", out_init, ("heads", "kv", "embed"),
                       (self.num_heads, head_dim, width))
        bias = param("out_bias", _zeros, ("embed",), (width,))
        return jnp.einsum("blhk,hkd->bld", out, kernel) + bias


def chunked_attention(q, k, v, mask, dtype, chunks: int = 1):
    """softmax(q k^T / sqrt(K) + mask) v for (B, L, H, K) q, k, v, the heads in `chunks`
    groups under `lax.map`, each group recomputed in the backward pass (`jax.checkpoint`).

    Why: the (B, H, Lq, Lkv) float32 scores and probabilities are the largest activations of a
    ViT block (B/16: 12 x 197 x 197 x 4 bytes = 1.9 MB per image, each); in groups only
    H / chunks heads' worth is live at once. chunks = 1 is plain attention."""
    heads = q.shape[2]
    if heads % chunks:
        raise ValueError(f"head_chunks {chunks} does not divide num_heads {heads}")

    def attend(q, k, v, mask):
        # Cast back: with float32 softmax weights flax returns float32, which made the whole
        # residual stream after the first block float32 in a bf16 model (twice the memory).
        return nn.dot_product_attention(q, k, v, mask=mask, dtype=dtype,
                                        force_fp32_for_softmax=True).astype(dtype)

    if chunks == 1:
        return attend(q, k, v, mask)
    split = lambda t, axis: jnp.moveaxis(
        t.reshape(*t.shape[:axis], chunks, heads // chunks, *t.shape[axis + 1:]), axis, 0)
    if mask is not None and mask.shape[1] == heads:  # (B, H, Lq, Lkv): a mask per group
        groups = (split(q, 2), split(k, 2), split(v, 2), split(mask, 1))
        fn = lambda g: attend(*g)
    else:  # no mask, or (B, 1, Lq, Lkv): the same for every group
        groups = (split(q, 2), split(k, 2), split(v, 2))
        fn = lambda g: attend(*g, mask)
    out = jax.lax.map(jax.checkpoint(fn), groups)  # (chunks, B, L, H / chunks, K)
    return jnp.moveaxis(out, 0, 2).reshape(q.shape)


class MlpBlock(nn.Module):
    """x -> act(x W_1 + b_1) W_2 + b_2 with W_1: (D, F), W_2: (F, D); act: see ACTIVATIONS."""

    mlp_dim: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    act: str = "gelu_tanh"

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        x = nn.Dense(
            self.mlp_dim,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(_kernel_init, ("embed", "mlp")),
            bias_init=nn.with_logical_partitioning(_zeros, ("mlp",)),
            name="fc1",
        )(x)
        x = nn.with_logical_constraint(activation(self.act)(x), ("batch", "length", "mlp"))
        return nn.Dense(
            width,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(_kernel_init, ("mlp", "embed")),
            bias_init=nn.with_logical_partitioning(_zeros, ("embed",)),
            name="fc2",
        )(x)


def layer_norm(dtype, param_dtype, name, eps: float = 1e-6):
    """LayerNorm over the last (embed) axis; flax keeps its statistics in float32. eps is
    flax's and big_vision's 1e-6 by default; PyTorch models (OpenCLIP) use 1e-5."""
    return nn.LayerNorm(
        epsilon=eps,
        dtype=dtype,
        param_dtype=param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
        bias_init=nn.with_logical_partitioning(_zeros, ("embed",)),
        name=name,
    )


class EncoderBlock(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + MLP(LN(x)). (B, L, D) -> (B, L, D)."""

    mlp_dim: int
    num_heads: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    head_chunks: int = 1
    act: str = "gelu_tanh"
    norm_eps: float = 1e-6

    @nn.compact
    def __call__(self, x, mask=None):
        y = layer_norm(self.dtype, self.param_dtype, "ln1", self.norm_eps)(x)
        y = MultiHeadAttention(self.num_heads, self.dtype, self.param_dtype, self.head_chunks,
                               name="attn")(y, y, mask)
        x = nn.with_logical_constraint(x + y, ("batch", "length", "embed"))
        y = layer_norm(self.dtype, self.param_dtype, "ln2", self.norm_eps)(x)
        y = MlpBlock(self.mlp_dim, self.dtype, self.param_dtype, self.act, name="mlp")(y)
        return nn.with_logical_constraint(x + y, ("batch", "length", "embed"))


class _ScannedBlock(EncoderBlock):
    """EncoderBlock with nn.scan's (carry, input) -> (carry, output) signature."""

    @nn.compact
    def __call__(self, x, mask=None):
        return super().__call__(x, mask), None


class Transformer(nn.Module):
    """`depth` pre-LN blocks followed by a final LayerNorm. (B, L, D) -> (B, L, D).

    remat: recompute each block's activations in the backward pass instead of storing them
    (memory O(depth * B L D) for the block inputs only, at the cost of one extra forward).
    scan: the blocks as one `nn.scan` over stacked parameters ("blocks", leading axis of logical
    name "layers") instead of `depth` unrolled copies: with remat, XLA then keeps exactly one
    block input per layer and one block's working set (unrolled, the TPU compile of ViT-B/16
    kept several blocks' internals live at once), and compiles one block instead of `depth`.
    head_chunks: attention's heads in this many sequential groups (`chunked_attention`).
    act, norm_eps: the MLP's nonlinearity (ACTIVATIONS) and the LayerNorms' epsilon.
    """

    depth: int
    mlp_dim: int
    num_heads: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: bool = False
    scan: bool = False
    head_chunks: int = 1
    act: str = "gelu_tanh"
    norm_eps: float = 1e-6

    @nn.compact
    def __call__(self, x, mask=None):
        fields = (self.mlp_dim, self.num_heads, self.dtype, self.param_dtype, self.head_chunks,
                  self.act, self.norm_eps)
        if self.scan:
            block = nn.remat(_ScannedBlock, prevent_cse=False) if self.remat else _ScannedBlock
            blocks = nn.scan(
                block, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                in_axes=nn.broadcast, length=self.depth,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            x, _ = blocks(*fields, name="blocks")(x, mask)
        else:
            block = nn.remat(EncoderBlock) if self.remat else EncoderBlock
            for i in range(self.depth):
                x = block(*fields, name=f"block{i}")(x, mask)
        return layer_norm(self.dtype, self.param_dtype, "final_norm", self.norm_eps)(x)
