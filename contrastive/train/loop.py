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
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tqdm

from contrastive import checkpoint, parallel
from contrastive import task as task_lib
from contrastive.data import from_config as data_lib
from contrastive.errors import UserError
from contrastive.evaluate import suite
from contrastive.train import events, losses, observe, pretrained, records, validate
from contrastive.train import state as state_lib
from contrastive.train import step as step_lib
from contrastive.train import workdir as workdir_lib
from contrastive.train.mixup import Mixup

log = logging.getLogger(__name__)
# The evaluation figures the progress bar shows (every figure goes to eval.jsonl).
HEADLINE_METRICS = ("zero_shot_top1", "knn_top1")


def _due(step: int, every: int, total: int) -> bool:
    return step == total or (every > 0 and step % every == 0)


def build_train_step(config, mesh, example: dict, vocab_size: int | None, num_examples: int,
                     pad_id: int = 0):
    """(task, init_fn, state shardings, jitted train step) for `config` on `mesh`: what the
    loop runs, and what experiments/pod_compile.py lowers for a TPU topology without one.
    `example` is one transformed example (arrays or ShapeDtypeStructs, no batch axis)."""
    rules = parallel.with_overrides(config.sharding_rules)
    task = task_lib.make_task(config, vocab_size, pad_id)
    loss = losses.bind(config.loss, mesh, config.loss_block_size, config.loss_options)
    optimizer, schedule = state_lib.make_optimizer(config.optimizer, config.total_steps)
    inputs = task_lib.model_inputs(task, example, parallel.batch_shards(mesh))
    init_fn = state_lib.make_init_fn(task, optimizer, inputs, loss.initial_state(num_examples))
    shardings = state_lib.state_shardings(task, init_fn, inputs, mesh, rules)
    train_step = step_lib.jit_train_step(
        step_lib.make_train_step(task, loss, optimizer, schedule, config.num_microbatches,
                                 Mixup.from_config(config.get("mixup"))),
        shardings, mesh, rules)
    return task, init_fn, shardings, train_step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains for config.total_steps, evaluating and checkpointing periodically and at the end.

    Writes config.json, metrics.jsonl, eval.jsonl, summary.json, TensorBoard event files
    (tensorboard/) and loss/eval PNG plots into workdir (process 0) and checkpoints into
    workdir/checkpoints (all processes); config.profile_steps adds a profiler trace. Returns
    the summary: final step, loss, last evaluation and wall time of this invocation.

    Before anything is written or read the config is checked (`validate`); then the workdir is
    locked, and a rerun must agree with the saved config (`workdir.check_rerun`). A finished
    run is left as it is: its summary is printed and returned. Every refusal is a UserError.
    """
    started = time.time()
    mesh = validate.check(config)
    os.makedirs(workdir, exist_ok=True)
    with workdir_lib.Lock(workdir, jax.process_index()) as lock:
        if lock.took_over:
            log.warning("Took over the lock of process %s on %s, which is gone.",
                        lock.took_over.get("pid"), lock.took_over.get("host"))
        saved = workdir_lib.read_json(os.path.join(workdir, "config.json"))
        if saved is not None:
            for change in workdir_lib.check_rerun(saved, json.loads(config.to_json()), workdir):
                log.warning("Resuming with a changed setting: %s", change)
        summary = workdir_lib.read_json(os.path.join(workdir, "summary.json"))
        if summary and summary.get("step", 0) >= config.total_steps:
            if jax.process_index() == 0:
                print(f"{workdir} already finished at step {summary['step']}; nothing to do: "
                      + ", ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
            return summary
        try:
            data = data_lib.make_train_data(config, parallel.batch_sharding(mesh))
        except (ValueError, FileNotFoundError) as error:  # the data named cannot be read
            raise UserError(f"config.data: {error}") from error
        try:
            with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                         config.keep_checkpoints,
                                         config.async_checkpoints) as checkpointer:
                return _train(config, workdir, mesh, data, checkpointer, started)
        finally:
            data.iterator.close()


def _config_error(config, error: ValueError) -> Exception:
    """A UserError if the message names a config field ("optimizer.frozen_patterns: ..."), as
    the model's and the optimiser's checks do; any other ValueError stays what it was."""
    if str(error).split(".", 1)[0] in config:
        return UserError(f"config.{error}")
    return error


def _train(config, workdir: str, mesh, data, checkpointer, started: float) -> dict:
    """The loop itself, on checked inputs: restore or initialise, then step, log, evaluate
    and save until config.total_steps."""
    is_writer = jax.process_index() == 0
    rules = parallel.with_overrides(config.sharding_rules)
    profiler = observe.Profiler(config.profile_steps, os.path.join(workdir, "tensorboard"))
    try:
        task, init_fn, shardings, train_step = build_train_step(
            config, mesh, data.example, data.tokenizer.vocab_size if data.tokenizer else None,
            data.num_examples, getattr(data.tokenizer, "pad_id", 0))
    except ValueError as error:  # e.g. a frozen pattern that matches no parameter of the model
        raise _config_error(config, error) from error

    restored = checkpointer.restore(state_lib.abstract_state(init_fn, shardings))
    if restored is None:
        first_step, state = 0, state_lib.init_state(init_fn, shardings, config.seed, mesh, rules)
        if config.model.get("pretrained"):  # step-0 weights from a file or run (LiT, fine-tuning)
            try:
                state = pretrained.load_pretrained(state, config.model, task, shardings)
            except ValueError as error:  # a file that does not fit the model
                raise _config_error(config, error) from error
    else:
        first_step, state, data_state = restored
        data.iterator.set_state(data_state)
        log.info("Resumed from the checkpoint at step %d.", first_step)
    if is_writer:  # what `python -m contrastive.evaluate` rebuilds the run from
        records.write_atomically(os.path.join(workdir, "config.json"), config.to_json(indent=1))

    evaluate = suite.make_evaluator(config, task, mesh, rules, data.tokenizer, workdir)
    metrics_log = records.JsonlWriter(os.path.join(workdir, "metrics.jsonl"), first_step, is_writer)
    eval_log = records.JsonlWriter(os.path.join(workdir, "eval.jsonl"), first_step, is_writer)
    board = events.EventWriter(workdir, first_step, config, is_writer)
    progress = tqdm.tqdm(
        total=config.total_steps, initial=first_step, desc="train", dynamic_ncols=True,
        disable=not (is_writer and config.progress_bar),
    )

    pending, interval_start, last_eval, last_loss = [], time.time(), {}, None
    data_waits, skipped = [], []  # per pending step: seconds in next(iterator), bad records
    for step in range(first_step + 1, config.total_steps + 1):
        wait_start = time.time()
        batch = next(data.iterator)
        data_waits.append(time.time() - wait_start)
        skipped.append(data.iterator.last_skipped)
        profiler.before(step)
        state, metrics = train_step(state, batch)
        interval_start += profiler.after(step, state, last=step == config.total_steps)
        if step == first_step + 1:  # compiled by now: the same executable, from jit's cache
            meter = observe.Meter(config, mesh, train_step.lower(state, batch).compile())
        pending.append(metrics)
        checkpointer.check_for_errors()  # a failed background save stops the run at once
        evaluating = evaluate is not None and _due(step, config.eval_every, config.total_steps)
        saving = _due(step, config.checkpoint_every, config.total_steps)
        if evaluating or saving or _due(step, config.log_every, config.total_steps):
            values = jax.device_get(pending)  # waits for these steps to finish
            timing = meter.timing(data_waits, time.time() - interval_start)
            wall = round(time.time() - started, 3)
            # bad records skipped on every process (one small all-gather per log interval)
            skipped = np.sum(multihost_utils.process_allgather(np.array(skipped)), axis=0) \
                if jax.process_count() > 1 else skipped
            lines = [
                {"step": step - len(values) + 1 + i, **{k: float(v) for k, v in m.items()},
                 **timing, "wall_time_s": wall, "data_wait_s": round(data_waits[i], 6),
                 "data_skipped": int(skipped[i]), **data.source_stats}
                for i, m in enumerate(values)
            ]
            metrics_log.write(lines)
            board.train(lines)
            last_loss = lines[-1]["loss"]
            progress.update(len(values))
            headline = {k: f"{v:.3f}" for k, v in last_eval.items() if k in HEADLINE_METRICS}
            progress.set_postfix(loss=f"{last_loss:.4f}", **meter.postfix(timing), **headline)
            pending, data_waits, skipped, interval_start = [], [], [], time.time()
        if evaluating:
            last_eval = evaluate(state)
            eval_log.write([{"step": step, **last_eval, "wall_time_s": time.time() - started}])
            board.evaluation(step, last_eval)
            progress.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in last_eval.items()))
        if saving:
            board.flush()  # every step up to the checkpoint is on disk before it
            checkpointer.save(step, state, data.iterator.get_state())
        if evaluating or saving:
            interval_start = time.time()  # throughput counts training only
    progress.close()
    board.close()
    checkpointer.wait()  # every checkpoint complete before the summary says the run is done

    summary = {"step": int(jax.device_get(state.step)), "loss": last_loss, **last_eval,
               "wall_time_s": round(time.time() - started, 2), "resumed_from": first_step}
    if is_writer:
        records.write_atomically(os.path.join(workdir, "summary.json"),
                                 json.dumps(summary, indent=1))
        if config.plots:
            records.write_plots(
                workdir,
                records.read_jsonl(os.path.join(workdir, "metrics.jsonl")),
                records.read_jsonl(os.path.join(workdir, "eval.jsonl")),
            )
        print("done: " + ", ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    return summary
