"""AdamW with linear warm-up and cosine decay, and the weight-decay mask."""
import jax
import ml_collections
import optax

# Parameters named like this are gains, offsets or scalars: never decayed (CLIP, OpenCLIP).
_NO_DECAY_NAMES = ("bias", "scale", "log_scale")


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """lr(t) = peak t / warmup for t < warmup, then peak (f + (1 - f)(1 + cos(pi u)) / 2) with
    u = (t - warmup) / (total - warmup) and f = end_learning_rate_fraction."""
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=config.learning_rate * config.end_learning_rate_fraction,
    )


def weight_decay_mask(params):
    """True for weight matrices and embedding tables (ndim >= 2, not named bias/scale); False
    for biases, norm gains, attention biases, the temperature and the SigLIP bias."""

    def decayed(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        return leaf.ndim >= 2 and not any(name.endswith(n) for n in _NO_DECAY_NAMES)

    return jax.tree_util.tree_map_with_path(decayed, params)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int):
    """(optimizer, schedule): global-norm clipping (if grad_clip_norm > 0), then AdamW with
    decoupled weight decay on the masked parameters."""
    schedule = learning_rate_schedule(config, total_steps)
    adamw = optax.adamw(
        schedule,
        b1=config.b1,
        b2=config.b2,
        eps=config.eps,
        weight_decay=config.weight_decay,
        mask=weight_decay_mask,
    )
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adamw), schedule
    return adamw, schedule
