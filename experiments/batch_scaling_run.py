"""One run of the batch-scaling study: its config from the run's id, training, and its result.

A run's id names everything that varies (`clip_b256_tlearn`, `siglip_b1024_t0.03`); the rest
follows from the rules below, so `batch_scaling.py --run=ID` on any host rebuilds the same run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the configs import `configs.common` from the repository root
    sys.path.insert(0, str(ROOT))

BASE_BATCH = 256  # the batch the digits configs' learning rate was tuned at
WARMUP_FRACTION = 0.1  # of the run's steps, so every run warms up over the same examples
_ID = re.compile(r"^(?P<loss>.+)_b(?P<batch>\d+)_t(?P<temperature>learn|[0-9.e+-]+)$")


@dataclasses.dataclass(frozen=True)
class Study:
    """What is swept and the budget every run shares."""

    batches: tuple[int, ...]
    temperatures: tuple[float, ...]  # fixed temperatures, swept at temperature_batch
    temperature_batch: int
    examples: int  # examples seen by every run: steps = examples / batch
    max_microbatch: int  # larger batches use contrastive gradient accumulation
    runlocal: bool  # start from the configs' smoke-run variant (the --fast study)


FULL = Study(batches=(16, 32, 64, 128, 256, 512, 1024), temperatures=(0.01, 0.03, 0.1, 0.3),
             temperature_batch=256, examples=51_200, max_microbatch=256, runlocal=False)
FAST = Study(batches=(16, 32), temperatures=(0.1,), temperature_batch=16, examples=64,
             max_microbatch=16, runlocal=True)


@dataclasses.dataclass(frozen=True)
class Run:
    loss: str
    batch: int
    temperature: float | None  # None: learnable, from the loss's config default

    @property
    def id(self) -> str:
        return f"{self.loss}_b{self.batch}_t{'learn' if self.temperature is None else f'{self.temperature:g}'}"

    @classmethod
    def from_id(cls, run_id: str) -> Run:
        match = _ID.match(run_id)
        if not match:
            raise ValueError(f"bad run id {run_id!r}; expected LOSS_bBATCH_tTEMP, e.g. "
                             "clip_b256_tlearn or clip_b256_t0.03")
        t = match["temperature"]
        return cls(match["loss"], int(match["batch"]), None if t == "learn" else float(t))


def schedule(run: Run, study: Study, base_learning_rate: float) -> dict:
    """Steps, micro-batches and learning rate of a run at equal examples seen.

    The peak rate scales with sqrt(batch / 256) (the square-root rule for Adam: the update
    noise stays comparable), warm-up is the same fraction of every run."""
    if study.examples % run.batch:
        raise ValueError(f"batch {run.batch} does not divide the {study.examples} examples")
    steps = study.examples // run.batch
    return {
        "steps": steps,
        "microbatches": max(1, run.batch // study.max_microbatch),
        "learning_rate": base_learning_rate * math.sqrt(run.batch / BASE_BATCH),
        "warmup_steps": max(1, round(WARMUP_FRACTION * steps)),
    }


def make_config(run: Run, study: Study):
    """configs/digits_LOSS.py where one exists (its temperature and bias defaults), else
    digits_clip with config.loss = LOSS; then the run's batch, schedule and temperature."""
    import importlib  # pylint: disable=import-outside-toplevel

    name = f"configs.digits_{run.loss}"
    module = importlib.import_module(
        name if (ROOT / "configs" / f"digits_{run.loss}.py").exists() else "configs.digits_clip"
    )
    c = module.get_config("runlocal" if study.runlocal else None)
    plan = schedule(run, study, c.optimizer.learning_rate)
    c.loss = run.loss
    c.batch_size = run.batch
    c.num_microbatches = plan["microbatches"]
    c.total_steps = plan["steps"]
    c.optimizer.learning_rate = plan["learning_rate"]
    c.optimizer.warmup_steps = plan["warmup_steps"]
    c.model.learn_temperature = run.temperature is None
    if run.temperature is not None:
        c.model.temperature_init = run.temperature
    c.eval_every = 0  # evaluate once, at the end: zero-shot, retrieval, geometry
    c.eval.knn = False  # embeds every training image; the study does not use it
    c.checkpoint_every = max(1, plan["steps"] // 4)  # a killed run resumes from here
    c.keep_checkpoints = 2
    c.progress_bar = False  # the sweep draws its own bar
    return c, plan


def _last(path: Path) -> dict:
    lines = [l for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
    return json.loads(lines[-1]) if lines else {}


def run_one(run: Run, study: Study, runs_dir: Path) -> dict:
    """Trains (or resumes) the run in runs_dir/ID and writes runs_dir/ID/result.json."""
    workdir = runs_dir / run.id
    result_path = workdir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    from contrastive.train import loop  # pylint: disable=import-outside-toplevel

    config, plan = make_config(run, study)
    if not (workdir / "summary.json").exists():  # a finished run has nothing left to train
        loop.train_and_evaluate(config, str(workdir))
    summary = json.loads((workdir / "summary.json").read_text())
    last = _last(workdir / "metrics.jsonl")
    final_eval = _last(workdir / "eval.jsonl")  # also there when a resume had nothing to train
    result = {
        "id": run.id, "loss": run.loss, "batch": run.batch,
        "temperature_mode": "learnable" if run.temperature is None else "fixed",
        "temperature_init": config.model.temperature_init, **plan,
        "final_temperature": last.get("temperature"), "final_loss": last.get("loss"),
        "wall_s": summary["wall_time_s"], "resumed_from": summary["resumed_from"],
        # zero_shot_top1 and, where the training evaluation measures them, retrieval and the
        # geometry (alignment, uniformity, ...) of held-out (image, caption) embeddings.
        **{k: v for k, v in final_eval.items() if k not in ("step", "wall_time_s")},
    }
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.rename(result_path)  # a result file is complete or absent
    return result
