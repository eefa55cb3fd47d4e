"""The train step: one pure function (state, batch) -> (state, metrics), jitted once with the
mesh's shardings and the old state donated."""
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel
from contrastive.train import accumulate
from contrastive.train.state import TrainState


def make_loss_and_grads(task, loss_fn, num_microbatches: int = 1):
    """(params, model_state, batch, rng) -> (loss, d loss / d params, new model_state) for
    the whole batch: directly, or by contrastive gradient accumulation over micro-batches
    (the same numbers up to float32 rounding; see `accumulate`)."""

    def embedding_loss(x, y, params):
        scale, bias = task.scale_and_bias(params)
        return loss_fn(x, y, scale, bias)

    def loss_and_grads(params, model_state, batch, rng):
        if num_microbatches > 1:
            return accumulate.value_and_grad(
                task.embed, embedding_loss, params, model_state, batch, rng, num_microbatches
            )

        def full_loss(params):
            (x, y), new_model_state = task.embed(params, model_state, batch, rng)
            return embedding_loss(x, y, params), new_model_state

        (loss, model_state), grads = jax.value_and_grad(full_loss, has_aux=True)(params)
        return loss, grads, model_state

    return loss_and_grads


def make_train_step(task, loss_fn, optimizer, schedule, num_microbatches: int = 1):
    """The step, unjitted. loss_fn(x, y, scale, bias) is the batch's contrastive loss.

    The per-step key is fold_in(state.rng, state.step): a pure function of the run's seed and
    the step, so a resumed run draws the same numbers as an uninterrupted one.
    """
    loss_and_grads = make_loss_and_grads(task, loss_fn, num_microbatches)

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        loss, grads, model_state = loss_and_grads(state.params, state.model_state, batch, rng)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        scale, bias = task.scale_and_bias(state.params)
        metrics = {
            "loss": loss,
            "learning_rate": schedule(state.step),
            "temperature": 1.0 / scale,
            "bias": jnp.asarray(bias, jnp.float32),
            "grad_norm": optax.global_norm(grads),
            "param_norm": optax.global_norm(state.params),
            "update_norm": optax.global_norm(updates),
        }
        new_state = TrainState(state.step + 1, params, model_state, opt_state, state.rng)
        return new_state, metrics

    return train_step


def jit_train_step(train_step, state_shardings: TrainState, mesh, rules):
    """Jitted with explicit in/out shardings; the old state's buffers are donated (reused for
    the new state), so a step needs one copy of params and optimiser state, not two."""
    replicated = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(
        train_step,
        in_shardings=(state_shardings, parallel.batch_sharding(mesh)),
        out_shardings=(state_shardings, replicated),
        donate_argnums=(0,),
    )

    def run(state, batch):
        # The models' logical constraints resolve against these rules while tracing.
        with parallel.sharding_context(mesh, rules):
            return jitted(state, batch)

    return run
