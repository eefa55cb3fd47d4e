"""The training loop: train_and_evaluate(config, workdir), the whole main job.

Restarting the same command in the same workdir resumes from the newest checkpoint that
restores (state and data position), so an interrupted run produces the same per-step losses
as an uninterrupted one.
"""
import json
import logging
import os
import time

import jax
import ml_collections
import tqdm

from contrastive import checkpoint, parallel
from contrastive.train import data as data_lib
from contrastive.train import (evaluators, init, losses, optim, per_example, plots, records,
                               step as step_lib)
from contrastive.train import task as task_lib

log = logging.getLogger(__name__)
# The evaluation figures the progress bar shows (every figure goes to eval.jsonl).
HEADLINE_METRICS = ("zero_shot_top1", "knn_top1")


def _model_inputs(task, example: dict, rows: int):
    """ShapeDtypeStructs of the model's inputs for `rows` examples."""
    batch = {k: jax.ShapeDtypeStruct((rows, *v.shape), v.dtype) for k, v in example.items()}
    return task.inputs(batch)


def _due(step: int, every: int, total: int) -> bool:
    return step == total or (every > 0 and step % every == 0)


def _rules(config):
    overrides = dict(config.sharding_rules)
    return parallel.with_overrides(overrides) if overrides else parallel.DEFAULT_RULES


def make_train_step(config, mesh, example: dict, vocab_size: int | None, num_examples: int):
    """(task, init_fn, state shardings, jitted train step) for `config` on `mesh`: what the
    loop runs, and what experiments/pod_compile.py lowers for a TPU topology without one.
    `example` is one transformed example (arrays or ShapeDtypeStructs, no batch axis)."""
    rules = _rules(config)
    batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
    task = task_lib.make_task(config, vocab_size)
    optimizer, schedule = optim.make_optimizer(config.optimizer, config.total_steps)
    inputs = _model_inputs(task, example, batch_shards)
    loss_state = per_example.initial_state(config.loss, num_examples, config.loss_options)
    init_fn = init.make_init_fn(task, optimizer, inputs, loss_state)
    shardings = init.state_shardings(task, init_fn, inputs, mesh, rules)
    loss_fn = losses.make_loss(config.loss, mesh, config.loss_block_size, config.loss_options)
    train_step = step_lib.jit_train_step(
        step_lib.make_train_step(task, loss_fn, optimizer, schedule, config.num_microbatches,
                                 config.loss_options),
        shardings, mesh, rules,
    )
    return task, init_fn, shardings, train_step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains for config.total_steps, evaluating and checkpointing periodically and at the end.

    Writes config.json, metrics.jsonl, eval.jsonl, summary.json and loss/eval PNG plots into
    workdir (process 0) and checkpoints into workdir/checkpoints (all processes). Returns the summary:
    final step, loss, last evaluation and wall time of this invocation.
    """
    started = time.time()
    is_writer = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    if is_writer:  # what `python -m contrastive.evaluate` rebuilds the run from
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json(indent=1))
    mesh = parallel.make_mesh(dict(config.mesh))
    rules = _rules(config)
    batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
    if config.batch_size % (config.num_microbatches * batch_shards):
        raise ValueError(
            f"batch_size {config.batch_size} must divide into num_microbatches "
            f"{config.num_microbatches} x {batch_shards} batch shards of mesh {dict(mesh.shape)}"
        )

    data = data_lib.make_train_data(config, parallel.batch_sharding(mesh))
    task, init_fn, shardings, train_step = make_train_step(
        config, mesh, data.example, data.tokenizer.vocab_size if data.tokenizer else None,
        data.num_examples)

    checkpointer = checkpoint.Checkpointer(
        os.path.join(workdir, "checkpoints"), config.keep_checkpoints, config.async_checkpoints
    )
    restored = checkpointer.restore(init.abstract_state(init_fn, shardings))
    if restored is None:
        first_step, state = 0, init.init_state(init_fn, shardings, config.seed, mesh, rules)
    else:
        first_step, state, data_state = restored
        data.iterator.set_state(data_state)
        log.info("Resumed from the checkpoint at step %d.", first_step)

    evaluate = evaluators.make_evaluator(config, task, mesh, rules, data.tokenizer)
    metrics_log = records.JsonlWriter(os.path.join(workdir, "metrics.jsonl"), first_step, is_writer)
    eval_log = records.JsonlWriter(os.path.join(workdir, "eval.jsonl"), first_step, is_writer)
    progress = tqdm.tqdm(
        total=config.total_steps, initial=first_step, desc="train", dynamic_ncols=True,
        disable=not (is_writer and config.progress_bar),
    )

    pending, interval_start, last_eval, last_loss = [], time.time(), {}, None
    for step in range(first_step + 1, config.total_steps + 1):
        state, metrics = train_step(state, next(data.iterator))
        pending.append(metrics)
        evaluating = evaluate is not None and _due(step, config.eval_every, config.total_steps)
        saving = _due(step, config.checkpoint_every, config.total_steps)
        if evaluating or saving or _due(step, config.log_every, config.total_steps):
            values = jax.device_get(pending)  # waits for these steps to finish
            rate = len(values) * config.batch_size / (time.time() - interval_start)
            wall = round(time.time() - started, 3)
            lines = [
                {"step": step - len(values) + 1 + i, **{k: float(v) for k, v in m.items()},
                 "examples_per_sec": rate, "wall_time_s": wall}
                for i, m in enumerate(values)
            ]
            metrics_log.write(lines)
            last_loss = lines[-1]["loss"]
            progress.update(len(values))
            headline = {k: f"{v:.3f}" for k, v in last_eval.items() if k in HEADLINE_METRICS}
            progress.set_postfix(loss=f"{last_loss:.4f}", ex_per_s=f"{rate:.0f}", **headline)
            pending, interval_start = [], time.time()
        if evaluating:
            last_eval = evaluate(state)
            eval_log.write([{"step": step, **last_eval, "wall_time_s": time.time() - started}])
            progress.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in last_eval.items()))
        if saving:
            checkpointer.save(step, state, data.iterator.get_state())
        if evaluating or saving:
            interval_start = time.time()  # throughput counts training only
    progress.close()
    checkpointer.wait()
    checkpointer.close()
    data.iterator.close()

    summary = {"step": int(jax.device_get(state.step)), "loss": last_loss, **last_eval,
               "wall_time_s": round(time.time() - started, 2), "resumed_from": first_step}
    if is_writer:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        if config.plots:
            plots.write_plots(
                workdir,
                records.read_jsonl(os.path.join(workdir, "metrics.jsonl")),
                records.read_jsonl(os.path.join(workdir, "eval.jsonl")),
            )
        print("done: " + ", ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    return summary
