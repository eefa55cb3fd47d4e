"""ResNet image tower (He et al. 2016), v1.5 (stride in the 3x3 conv), as SimCLR uses.

images (B, H, W, C) -> stem -> 4 stages of residual blocks -> global average pool (B, C_out),
C_out = 8 * width for basic blocks, 32 * width for bottlenecks; optionally a class layer.
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

RESNET_SIZES = {
    "18": dict(stage_sizes=(2, 2, 2, 2), bottleneck=False),
    "34": dict(stage_sizes=(3, 4, 6, 3), bottleneck=False),
    "50": dict(stage_sizes=(3, 4, 6, 3), bottleneck=True),
    "101": dict(stage_sizes=(3, 4, 23, 3), bottleneck=True),
    "152": dict(stage_sizes=(3, 8, 36, 3), bottleneck=True),
}

_ACTIVATION_NAMES = ("batch", "height", "width", "conv_out")


def _conv(features, kernel, strides=1, first=False, dtype=jnp.float32, param_dtype=jnp.float32,
          name=None):
    """Bias-free conv, kernel (k, k, C_in, C_out); the stem's C_in (RGB) is never sharded."""
    in_name = None if first else "conv_in"
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(strides, strides),
        padding=[(kernel // 2, kernel // 2)] * 2,
        use_bias=False,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
            (None, None, in_name, "conv_out"),
        ),
        name=name,
    )


def _batch_norm(train, zero_init=False, dtype=jnp.float32, param_dtype=jnp.float32, name=None):
    """BatchNorm over (B, H, W) per channel. Under jit the statistics are over the global batch,
    whatever the mesh, so data-parallel training matches one device (SimCLR's global BN)."""
    scale_init = nn.initializers.zeros_init() if zero_init else nn.initializers.ones_init()
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        param_dtype=param_dtype,
        scale_init=nn.with_logical_partitioning(scale_init, ("conv_out",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
        name=name,
    )


class ResidualBlock(nn.Module):
    """relu(x + F(x)); F is conv3x3-BN-relu-conv3x3-BN (basic) or conv1x1-BN-relu-conv3x3-BN-relu-
    conv1x1-BN (bottleneck, 4x wider out). The last BN starts at zero scale, so every block starts
    as the identity (Goyal et al. 2017). A 1x1 conv + BN projects x when the shape changes."""

    filters: int
    strides: int
    bottleneck: bool
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        conv = functools.partial(_conv, dtype=self.dtype, param_dtype=self.param_dtype)
        norm = functools.partial(_batch_norm, train, dtype=self.dtype, param_dtype=self.param_dtype)
        if self.bottleneck:
            out_filters = 4 * self.filters
            y = nn.relu(norm(name="bn1")(conv(self.filters, 1, name="conv1")(x)))
            y = nn.relu(norm(name="bn2")(conv(self.filters, 3, self.strides, name="conv2")(y)))
            y = norm(zero_init=True, name="bn3")(conv(out_filters, 1, name="conv3")(y))
        else:
            out_filters = self.filters
            y = nn.relu(norm(name="bn1")(conv(self.filters, 3, self.strides, name="conv1")(x)))
            y = norm(zero_init=True, name="bn2")(conv(self.filters, 3, name="conv2")(y))
        if x.shape[-1] != out_filters or self.strides != 1:
            x = norm(name="proj_bn")(conv(out_filters, 1, self.strides, name="proj_conv")(x))
        return nn.with_logical_constraint(nn.relu(x + y), _ACTIVATION_NAMES)


class ResNet(nn.Module):
    """ResNet: (B, H, W, C) images -> (B, C_out) pooled features, or (B, num_classes) logits.

    stage_sizes: blocks per stage; stage s has width * 2^s filters and stride 2 from s = 1 on.
    small_inputs: a 3x3 stride-1 stem without max-pool (CIFAR-style, for 8x8 or 32x32 images)
      instead of the 7x7 stride-2 stem and 3x3 stride-2 max-pool.
    """

    stage_sizes: Sequence[int]
    bottleneck: bool = True
    width: int = 64
    small_inputs: bool = False
    num_classes: int | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, images, train: bool = False):
        x = images.astype(self.dtype)
        kernel, stride = (3, 1) if self.small_inputs else (7, 2)
        x = _conv(self.width, kernel, stride, first=True, dtype=self.dtype,
                  param_dtype=self.param_dtype, name="stem_conv")(x)
        x = nn.relu(_batch_norm(train, dtype=self.dtype, param_dtype=self.param_dtype,
                                name="stem_bn")(x))
        if not self.small_inputs:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        x = nn.with_logical_constraint(x, _ACTIVATION_NAMES)

        # `train` (argument 2, counting self) is a Python bool that picks the BN mode: static.
        block = nn.remat(ResidualBlock, static_argnums=(2,)) if self.remat else ResidualBlock
        for stage, num_blocks in enumerate(self.stage_sizes):
            for i in range(num_blocks):
                strides = 2 if stage > 0 and i == 0 else 1
                x = block(self.width * 2**stage, strides, self.bottleneck, self.dtype,
                          self.param_dtype, name=f"stage{stage}_block{i}")(x, train)

        x = nn.with_logical_constraint(jnp.mean(x, axis=(1, 2)), ("batch", "embed"))
        if self.num_classes is not None:
            x = nn.Dense(
                self.num_classes,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(
                    nn.initializers.zeros_init(), ("embed", "classes")
                ),
                bias_init=nn.with_logical_partitioning(
                    nn.initializers.zeros_init(), ("classes",)
                ),
                name="classifier",
            )(x)
        return x


def resnet(name: str, **overrides) -> ResNet:
    """A ResNet by depth name ("18", "50", ...); `overrides` set any other field.

    >>> resnet("50")                                  # SimCLR's ImageNet encoder, 2048-d output
    >>> resnet("18", width=8, small_inputs=True)      # a tiny model for 8x8 digits on CPU
    """
    if name not in RESNET_SIZES:
        raise ValueError(f"unknown ResNet size {name!r}; known sizes: {', '.join(RESNET_SIZES)}")
    return ResNet(**{**RESNET_SIZES[name], **overrides})
