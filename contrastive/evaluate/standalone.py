"""Every evaluator of a run, on one of its saved checkpoints (`python -m contrastive.evaluate`).

The run's workdir holds config.json (written by the training loop) and checkpoints/; the task,
tokenizer and state layout are rebuilt from the config and the state restored read-only (the
workdir is never modified, except for the JSON results this writes).
"""
import json
import os
import sys
import time
import types

import jax
import ml_collections
import numpy as np

from contrastive import checkpoint, convert, parallel
from contrastive import task as task_lib
from contrastive.data import from_config as data_lib
from contrastive.data import pipeline
from contrastive.errors import UserError
from contrastive.evaluate import suite


class EvaluationError(UserError):
    """A mistake in what was asked (no such workdir, step or class): one line for the user."""


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The config the run in `workdir` was trained with."""
    if not os.path.isdir(workdir):
        raise EvaluationError(f"workdir {workdir} does not exist")
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise EvaluationError(f"{workdir} has no config.json: not a workdir written by "
                              "python -m contrastive.main")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def _checkpoints(workdir: str) -> checkpoint.ReadOnlyCheckpoints:
    checkpoints = checkpoint.ReadOnlyCheckpoints(os.path.join(workdir, "checkpoints"))
    if not checkpoints.steps():
        raise EvaluationError(f"no checkpoint in {checkpoints.directory}: train first (python -m "
                              "contrastive.main ... --workdir=...), or check the path")
    return checkpoints


def _abstract_variables(config, task, tokenizer, mesh, rules) -> dict:
    """{"params", "model_state"} as sharded ShapeDtypeStructs, laid out as the training loop
    lays them out (the optimiser's and loss's state are not needed here)."""
    source = data_lib.load_source(config, config.data.eval_split)
    first = pipeline.first_good_records(source, 1)[0]
    example = data_lib.make_transform(config, source, tokenizer)(first, np.random.default_rng(0))
    inputs = task_lib.model_inputs(task, example, parallel.batch_shards(mesh))
    variables = task_lib.abstract_variables(task, inputs, mesh, rules)
    return {"params": variables.pop("params"), "model_state": variables}


def _restore_variables(checkpoints, steps: list[int], target: dict):
    """(step, variables) of the newest of `steps` that restores: the checkpoint's params and
    model_state only (a partial restore reads nothing else, whatever else the TrainState
    holds). A step that fails to read is said on stderr and the next older one tried, as the
    trainer does; EvaluationError if none restores."""
    failures = []
    for step in sorted(steps, reverse=True):
        try:
            restored = checkpoints.restore_state_items(step, target)
        except Exception as error:  # noqa: BLE001 - any failure to read makes it unusable
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            print(f"warning: the checkpoint at step {step} cannot be restored ({reason})"
                  + ("; trying an older one" if step != min(steps) else ""), file=sys.stderr)
            failures.append(f"step {step}: {reason}")
            continue
        return step, types.SimpleNamespace(params=restored["params"],
                                           model_state=restored.get("model_state") or {})
    raise EvaluationError(f"no checkpoint in {checkpoints.directory} restores into this run's "
                          f"model ({'; '.join(failures)})")


def _every_evaluator(config) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(config.to_dict())
    e = config.eval
    e.retrieval = e.geometry = e.knn = e.linear_probe = True
    # zero-shot needs prompts: the digits captions or templates
    e.zero_shot = bool(e.templates) or (config.data.name == "digits" and not e.class_names)
    return config


def _evaluation(config, mesh_shape: dict | None):
    """(mesh, rules, tokenizer, task, evaluator) for `config` on `mesh_shape` (default: the
    config's mesh); a mesh that does not fit or a config that cannot be evaluated (e.g. classes
    lacking prompts) is an EvaluationError."""
    try:
        mesh = parallel.make_mesh(dict(mesh_shape or config.mesh))
    except ValueError as error:
        raise EvaluationError(f"{error} (pass --mesh='{{\"data\": -1}}' to use every device "
                              "for data parallelism)") from None
    rules = parallel.with_overrides(config.sharding_rules)
    tokenizer = data_lib.make_tokenizer(config) if config.model.kind == "image_text" else None
    task = task_lib.make_task(config, tokenizer.vocab_size if tokenizer else None,
                              getattr(tokenizer, "pad_id", 0))
    try:
        evaluate = suite.make_evaluator(config, task, mesh, rules, tokenizer)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    return mesh, rules, tokenizer, task, evaluate


def evaluate_checkpoint(workdir: str, step: int | None = None, mesh_shape: dict | None = None):
    """(step, {metric: value}) of every evaluator on the checkpoint at `step` (None: latest)."""
    config = _every_evaluator(load_run_config(workdir))
    checkpoints = _checkpoints(workdir)
    steps = checkpoints.steps()
    if step is not None and step not in steps:
        raise EvaluationError(f"no checkpoint at step {step} in {checkpoints.directory}; "
                              f"available steps: {', '.join(map(str, steps))}")
    mesh, rules, tokenizer, task, evaluate = _evaluation(config, mesh_shape)
    target = _abstract_variables(config, task, tokenizer, mesh, rules)
    step, state = _restore_variables(checkpoints, steps if step is None else [step], target)
    checkpoints.close()
    return step, evaluate(state)


def evaluate_pretrained(config: ml_collections.ConfigDict, mesh_shape: dict | None = None):
    """{metric: value} of `config`'s evaluators on the weights of the file
    config.model.pretrained (format config.model.pretrained_format: flat, openclip or
    big_vision), with no training step and no workdir: a published model evaluated as is."""
    fmt = config.model.get("pretrained_format", "run")
    if not config.model.get("pretrained") or fmt not in ("flat", "openclip", "big_vision"):
        raise EvaluationError("evaluating a file needs model.pretrained and a pretrained_format "
                              f"of flat, openclip or big_vision (got {fmt!r})")
    mesh, rules, tokenizer, task, evaluate = _evaluation(config, mesh_shape)
    try:
        params = convert.read_params(config.model.pretrained, fmt, task.model)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    target = _abstract_variables(config, task, tokenizer, mesh, rules)["params"]
    shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
    try:
        same = shapes(params) == shapes(target)
    except (KeyError, TypeError, ValueError):
        same = False
    if not same:
        raise EvaluationError(f"{config.model.pretrained}: its parameters do not fit the model "
                              "the config builds (names or shapes differ)")
    placed = jax.tree.map(lambda v, t: jax.device_put(np.asarray(v, t.dtype), t.sharding),
                          params, target)
    return evaluate(types.SimpleNamespace(params=placed, model_state={}))


def format_table(results: dict[str, float], title: str = "") -> str:
    """An aligned Markdown table, one metric per row."""
    def show(value):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}"

    rows = [(name, show(value)) for name, value in results.items()]
    width = max([len("metric")] + [len(n) for n, _ in rows])
    value_width = max([len("value")] + [len(v) for _, v in rows])
    lines = [title] if title else []
    lines.append(f"| {'metric'.ljust(width)} | {'value'.rjust(value_width)} |")
    lines.append(f"|{'-' * (width + 2)}|{'-' * (value_width + 1)}:|")
    lines += [f"| {n.ljust(width)} | {v.rjust(value_width)} |" for n, v in rows]
    return "\n".join(lines)


def run(workdir: str, step: int | None = None, json_path: str | None = None,
        mesh_shape: dict | None = None) -> dict:
    """Evaluates, prints the table and writes {"workdir", "step", "metrics", ...} as JSON."""
    started = time.time()
    step, results = evaluate_checkpoint(workdir, step, mesh_shape)
    record = {"workdir": os.path.abspath(workdir), "step": step, "metrics": results,
              "wall_time_s": round(time.time() - started, 2)}
    json_path = json_path or os.path.join(workdir, f"evaluate_step{step}.json")
    if jax.process_index() == 0:
        print(format_table(results, f"{workdir}, step {step}"), flush=True)
        with open(json_path, "w") as f:
            json.dump(record, f, indent=1)
        print(f"wrote {json_path}", flush=True)
    return record
