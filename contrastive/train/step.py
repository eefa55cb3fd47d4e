"""The train step: one pure function (state, batch) -> (state, metrics), the same for every
loss, jitted once with the mesh's shardings and the old state donated."""
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from contrastive import parallel
from contrastive.train import accumulate
from contrastive.train import losses as losses_lib
from contrastive.train.mixup import Mixup
from contrastive.train.state import TrainState


def loss_and_grads(task, loss, params, model_state, batch, rng, rows, num_microbatches=1,
                   mixup: Mixup = Mixup()):
    """(loss, (per-example outputs, terms), d loss / d params, d loss / d rows, new
    model_state) of the whole batch: directly, or by contrastive gradient accumulation over
    micro-batches (the same numbers up to float32 rounding; see `accumulate`). `loss` is a
    `losses.BoundLoss`; `rows` the batch's per-example loss state ({} for most losses);
    `mixup` adds the loss of mixed embeddings (off by default; see `mixup`).

    A task's embed may return (x, y, aux), aux {name: (B,) per-example auxiliary losses}
    (CoCa's captioning cross-entropy): the objective is then the contrastive loss +
    sum_name task.aux_weights[name] * mean(aux[name]), and `terms` holds each mean and the
    contrastive loss alone ("contrastive_loss"), for the metrics. Without aux, terms = {}."""

    def embedding_loss(pair, params, rows):
        x, y, *aux = pair
        scale, bias = task.scale_and_bias(params)
        pair_loss = lambda x, y: loss(x, y, scale, bias, batch.get("label"), rows)
        value, outputs = mixup.objective(pair_loss, x, y, rng)
        if not aux:
            return value, (outputs, {})
        terms = {name: jnp.mean(v) for name, v in aux[0].items()}
        total = value + sum(task.aux_weights[name] * mean for name, mean in terms.items())
        return total, (outputs, {**terms, "contrastive_loss": value})

    if num_microbatches > 1:
        return accumulate.value_and_grad(task.embed, embedding_loss, params, model_state, batch,
                                         rng, rows, num_microbatches)

    def full_loss(params, rows):
        pair, new_model_state = task.embed(params, model_state, batch, rng)
        value, outputs = embedding_loss(pair, params, rows)
        return value, (outputs, new_model_state)

    (value, (outputs, model_state)), (grads, row_grads) = jax.value_and_grad(
        full_loss, argnums=(0, 1), has_aux=True)(params, rows)
    return value, outputs, grads, row_grads, model_state


def make_train_step(task, loss, optimizer, schedule, num_microbatches: int = 1,
                    mixup: Mixup = Mixup()):
    """The step, unjitted. `loss` is a `losses.BoundLoss`: the batch's rows of its per-example
    state are gathered by example index, passed in, updated and written back.

    The per-step key is fold_in(state.rng, state.step): a pure function of the run's seed and
    the step, so a resumed run draws the same numbers as an uninterrupted one.
    """

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        rows = losses_lib.gather(state.loss_state, batch["index"])
        value, (outputs, terms), grads, row_grads, model_state = loss_and_grads(
            task, loss, state.params, state.model_state, batch, rng, rows, num_microbatches,
            mixup)
        new_rows, loss_metrics = loss.update_state(rows, row_grads, outputs)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = task.constrain(optax.apply_updates(state.params, updates))
        scale, bias = task.scale_and_bias(state.params)
        metrics = {
            "loss": value,
            "learning_rate": schedule(state.step),
            "temperature": 1.0 / scale,
            "bias": jnp.asarray(bias, jnp.float32),
            "grad_norm": optax.global_norm(grads),
            "param_norm": optax.global_norm(state.params),
            "update_norm": optax.global_norm(updates),
            **loss_metrics,
            **terms,
        }
        loss_state = losses_lib.scatter(state.loss_state, batch["index"], new_rows)
        return TrainState(state.step + 1, params, model_state, opt_state, state.rng,
                          loss_state), metrics

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
