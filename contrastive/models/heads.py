"""Projection heads from a tower's features to the contrastive embedding space."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def l2_normalize(x, eps: float = 1e-12):
    """x / max(||x||_2, eps) along the last axis, in float32.

    In float32 because the loss takes dot products of these vectors times a scale up to ~100:
    bf16's 8-bit mantissa would put errors of order 1e-2 * scale into every logit.
    """
    x = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


class LinearHead(nn.Module):
    """x W (+ b): (B, D) -> (B, out_dim), W: (D, out_dim). CLIP's and SigLIP's projection."""

    out_dim: int
    use_bias: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train
        x = nn.Dense(
            self.out_dim,
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "proj")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("proj",)),
            name="proj",
        )(x)
        return nn.with_logical_constraint(x, ("batch", "proj"))


class MLPHead(nn.Module):
    """SimCLR's projection head: (depth - 1) x [Dense(hidden_dim) -> BN -> relu], then
    Dense(out_dim). (B, D) -> (B, out_dim). SimCLR v1 uses depth 2, v2 depth 3; batch_norm=False
    gives the plain MLP (MoCo v2's head)."""

    hidden_dim: int
    out_dim: int
    depth: int = 2
    batch_norm: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i in range(self.depth - 1):
            # The first layer reads the tower's features ("embed"); later ones read the previous
            # hidden layer, whose dimension is left whole (a name may occur once per array).
            in_name = "embed" if i == 0 else None
            x = nn.Dense(
                self.hidden_dim,
                use_bias=not self.batch_norm,  # BN's shift makes a bias redundant
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(
                    nn.initializers.lecun_normal(), (in_name, "mlp")
                ),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
                name=f"hidden{i}",
            )(x)
            if self.batch_norm:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    epsilon=1e-5,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("mlp",)),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
                    name=f"bn{i}",
                )(x)
            x = nn.with_logical_constraint(nn.relu(x), ("batch", "mlp"))
        x = nn.Dense(
            self.out_dim,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(
                nn.initializers.lecun_normal(), ("mlp" if self.depth > 1 else "embed", "proj")
            ),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("proj",)),
            name="out",
        )(x)
        return nn.with_logical_constraint(x, ("batch", "proj"))


class Prototypes(nn.Module):
    """SwAV's prototypes: (B, d) unit embeddings z -> (B, K) scores z C^T against K learnable
    prototypes c_k, the kernel's columns, L2-normalised in the forward (SwAV re-normalises them
    after every update; here the normalisation is part of the function, so the scores are
    cosines whatever the optimiser does to the kernel's norm). Scores are float32 whatever the
    compute dtype: the Sinkhorn divides them by epsilon = 0.05 before exponentiating."""

    num_prototypes: int
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z):
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("proj", "classes")),
            (z.shape[-1], self.num_prototypes),
            self.param_dtype,
        )
        prototypes = l2_normalize(kernel.T)  # (K, d) unit rows
        scores = jnp.dot(z.astype(jnp.float32), prototypes.T,
                         precision=jax.lax.Precision.HIGHEST)
        return nn.with_logical_constraint(scores, ("batch", "classes"))
