"""Dense references: each loss written directly on the full N x N score matrix.

They are the oracles of the tests (run in float64, differentiated by plain autodiff) and the
"dense" baselines of the benchmarks. Short and obviously right, never fast or frugal.
"""
import jax
import jax.numpy as jnp


def clip_loss_dense(x, y, scale):
    """OpenCLIP `ClipLoss`: mean of the two cross-entropies of logits = scale x y^T."""
    logits = scale * x @ y.T
    labels = jnp.arange(x.shape[0])
    ce_rows = -jnp.mean(jax.nn.log_softmax(logits, axis=1)[labels, labels])
    ce_cols = -jnp.mean(jax.nn.log_softmax(logits, axis=0)[labels, labels])
    return (ce_rows + ce_cols) / 2


def siglip_loss_dense(x, y, scale, bias):
    """OpenCLIP `SigLipLoss`: -sum_ij log sigmoid(z_ij (scale x_i.y_j + bias)) / N."""
    logits = scale * x @ y.T + bias
    z = 2 * jnp.eye(x.shape[0], dtype=logits.dtype) - 1
    return -jnp.sum(jax.nn.log_sigmoid(z * logits)) / x.shape[0]
