"""contrastive: large-batch contrastive learning in JAX/Flax."""
