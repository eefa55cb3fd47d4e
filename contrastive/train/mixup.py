"""Mixup for metric learning on the embeddings (Metrix: Venkataramanan et al. 2022, "It Takes
Two to Tango: Mixup for Deep Metric Learning"), an option of every loss without labels or
per-example state, image-text and two-view alike (`config.mixup`).

Each anchor is mixed with the next row's, and so are its targets:

    lambda ~ Beta(alpha, alpha), once per step
    x~_i = normalize(lambda x_i + (1 - lambda) x_{i+1})       (row N-1 mixes with row 0)
    L_mix = lambda L(x~, y) + (1 - lambda) L(x~, y_{+1}),      (y_{+1})_i = y_{i+1}
    objective = L(x, y) + weight L_mix                        (the clean loss is kept)

A cross-entropy is linear in its targets and both terms share their candidate sets, so for
CLIP, SigLIP and NT-Xent L_mix is exactly the loss with interpolated targets: anchor x~_i's
target is lambda on y_i and 1 - lambda on y_{i+1}, and caption y_j's is lambda on x~_j and
1 - lambda on x~_{j-1}. For the other losses it is Metrix's interpolation of the two losses.
Mixing the embeddings (Metrix's "embedding mixup") rather than the images keeps it outside
the model: the same on one device and on a mesh (the roll is XLA's collective permute), and
with contrastive gradient accumulation, which sees the whole batch's embeddings.
"""
import dataclasses

import jax
import jax.numpy as jnp

from contrastive.models import l2_normalize

# fold_in(step key, MIXUP_STREAM) draws lambda: a stream of its own (dropout uses the step key
# and, with accumulation, fold_in(key, j) for micro-batches j < num_microbatches).
MIXUP_STREAM = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Mixup:
    alpha: float = 0.0  # Beta(alpha, alpha) of the mixing weight; 0: off
    weight: float = 1.0  # of the mixed loss, added to the clean one

    @classmethod
    def from_config(cls, config) -> "Mixup":
        return cls(**dict(config)) if config is not None else cls()

    def objective(self, pair_loss, x, y, rng):
        """(objective, per-example outputs) of `pair_loss(x, y) -> (value, outputs)`; the
        clean loss alone when alpha is 0."""
        value, outputs = pair_loss(x, y)
        if not self.alpha:
            return value, outputs
        lam = mixing_weight(rng, self.alpha)
        mixed = mix(x, lam)
        next_y = jnp.roll(y, -1, axis=0)
        mixed_loss = lam * pair_loss(mixed, y)[0] + (1 - lam) * pair_loss(mixed, next_y)[0]
        return value + self.weight * mixed_loss, outputs


def mixing_weight(rng, alpha: float) -> jax.Array:
    """lambda ~ Beta(alpha, alpha) from the step's key."""
    return jax.random.beta(jax.random.fold_in(rng, MIXUP_STREAM), alpha, alpha)


def mix(x, lam):
    """normalize(lam x_i + (1 - lam) x_{i+1}), rows of unit embeddings, float32."""
    lam = jnp.asarray(lam, x.dtype)
    return l2_normalize(lam * x + (1 - lam) * jnp.roll(x, -1, axis=0))
