"""The train step: one pure function (state, batch) -> (state, metrics), jitted once with the
mesh's shardings and the old state donated."""
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel
from contrastive.train import accumulate, per_example
from contrastive.train.state import TrainState


def make_loss_and_grads(task, loss_fn, num_microbatches: int = 1, stateful: bool = False):
    """(params, model_state, batch, rng) -> (loss, d loss / d params, new model_state) for
    the whole batch: directly, or by contrastive gradient accumulation over micro-batches
    (the same numbers up to float32 rounding; see `accumulate`).

    `stateful` (iSogCLR): the function takes the batch's per-example loss inputs as a fifth
    argument and returns ((loss, new estimates), (grads, input grads), new model_state)."""
    if stateful and num_microbatches > 1:
        raise ValueError("a loss with per-example state (isogclr) does not support "
                         "num_microbatches > 1 yet")

    def embedding_loss(x, y, params, batch, loss_inputs=None):
        scale, bias = task.scale_and_bias(params)
        return loss_fn(x, y, scale, bias, labels=batch["label"], **(loss_inputs or {}))

    def loss_and_grads(params, model_state, batch, rng, loss_inputs=None):
        if num_microbatches > 1:
            return accumulate.value_and_grad(
                task.embed, lambda x, y, p: embedding_loss(x, y, p, batch), params, model_state,
                batch, rng, num_microbatches
            )

        def full_loss(params, loss_inputs):
            (x, y), new_model_state = task.embed(params, model_state, batch, rng)
            out = embedding_loss(x, y, params, batch, loss_inputs)
            loss, estimates = out if stateful else (out, None)
            return loss, (new_model_state, estimates)

        (loss, (model_state, estimates)), grads = jax.value_and_grad(
            full_loss, argnums=(0, 1), has_aux=True)(params, loss_inputs or {})
        if stateful:
            return (loss, estimates), grads, model_state
        return loss, grads[0], model_state

    return loss_and_grads


def make_train_step(task, loss_fn, optimizer, schedule, num_microbatches: int = 1,
                    loss_options=None):
    """The step, unjitted. loss_fn(x, y, scale, bias, labels=...) is the batch's contrastive
    loss; with per-example state in the train state (iSogCLR), the batch's rows of it are
    gathered by example index, passed in, and updated (`per_example`).

    The per-step key is fold_in(state.rng, state.step): a pure function of the run's seed and
    the step, so a resumed run draws the same numbers as an uninterrupted one.
    """

    def train_step(state: TrainState, batch):
        stateful = bool(state.loss_state)
        loss_and_grads = make_loss_and_grads(task, loss_fn, num_microbatches, stateful)
        rng = jax.random.fold_in(state.rng, state.step)
        loss_state, extra_metrics = state.loss_state, {}
        if stateful:
            inputs = per_example.gather(state.loss_state, batch["index"])
            (loss, estimates), (grads, input_grads), model_state = loss_and_grads(
                state.params, state.model_state, batch, rng, inputs)
            loss_state = per_example.update(state.loss_state, batch["index"], inputs,
                                            input_grads, estimates, loss_options or {})
            # The batch's temperatures after their update.
            extra_metrics = {f"mean_{t}": jnp.mean(loss_state[t][batch["index"]])
                             for t in per_example.TEMPERATURES}
        else:
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
            **extra_metrics,
        }
        new_state = TrainState(state.step + 1, params, model_state, opt_state, state.rng,
                               loss_state)
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

    def lower(state, batch):
        """The same jit lowered for abstract arguments (ahead-of-time compilation)."""
        with parallel.sharding_context(mesh, rules):
            return jitted.lower(state, batch)

    run.lower = lower
    return run
