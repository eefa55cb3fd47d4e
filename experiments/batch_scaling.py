"""Batch-size and temperature scaling study on the embedded digits captions, in one command.

    python experiments/batch_scaling.py                  # the whole study (28 min, 2 busy cores)
    python experiments/batch_scaling.py --fast           # 3 tiny runs, outputs *_fast.*
    python experiments/batch_scaling.py --print_commands # one command per run, to fan out
    python experiments/batch_scaling.py --run=clip_b256_t0.03   # one run (what those print)
    python experiments/batch_scaling.py --report         # tables and plots from finished runs

Sweeps global batch (16 .. 1024; above 256 by contrastive gradient accumulation) x loss (those
of clip, siglip, dcl that contrastive.train.losses.LOSSES has, or --losses) with a learnable
temperature, and fixed temperatures (0.01 .. 0.3) at batch 256, every run at the same number of
examples seen (51,200, i.e. ~38 epochs of the 1,343 training images; steps = examples / batch),
peak learning rate 3e-3 * sqrt(batch / 256), warm-up over the first 10% of steps. Each run
trains in its own process into RESULTS/batch_scaling_runs/ID and ends with result.json
(held-out zero-shot top-1, learnt temperature, and the alignment / uniformity of held-out
image-caption embeddings). Writes RESULTS/batch_scaling.{json,md}, batch_scaling_batch.png and
batch_scaling_temperature.png.

Resumable: a run with a result.json is skipped; a killed run resumes from its last checkpoint.
Fanning out: `--print_commands` prints one self-contained command per unfinished run; run them
anywhere (a host each, a job array, `xargs -P`) with --runs_dir on a shared filesystem, or copy
the run directories back, then `--report` collects them.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import batch_scaling_report as report
import batch_scaling_run as spec
import benchlib
from tqdm import tqdm

DEFAULT_LOSSES = ("clip", "siglip", "dcl")


def available_losses(requested: list[str] | None) -> list[str]:
    """The requested losses (each must exist), or the defaults that exist at run time."""
    from contrastive.train.losses import LOSSES  # pylint: disable=import-outside-toplevel

    if requested:
        unknown = [l for l in requested if l not in LOSSES]
        if unknown:
            raise SystemExit(f"unknown loss(es) {unknown}; choose from {sorted(LOSSES)}")
        return requested
    return [l for l in DEFAULT_LOSSES if l in LOSSES]


def plan_runs(study: spec.Study, losses: list[str]) -> list[spec.Run]:
    """Batch sweep (learnable temperature) then the fixed temperatures, no run twice."""
    runs = [spec.Run(l, b, None) for l in losses for b in study.batches]
    runs += [spec.Run(l, study.temperature_batch, t) for l in losses for t in study.temperatures]
    return list(dict.fromkeys(runs))


def run_command(run: spec.Run, args, portable: bool = False) -> list[str]:
    """The command of one run; `portable`: as typed from the repository root on any host."""
    if not portable:
        return [sys.executable, str(Path(__file__).resolve()), f"--run={run.id}",
                f"--runs_dir={args.runs_dir}"] + (["--fast"] if args.fast else [])
    runs_dir = args.runs_dir
    if runs_dir.is_relative_to(spec.ROOT):
        runs_dir = runs_dir.relative_to(spec.ROOT)
    return ["python", "experiments/batch_scaling.py", f"--run={run.id}",
            f"--runs_dir={runs_dir}"] + (["--fast"] if args.fast else [])


def execute(runs: list[spec.Run], args) -> list[str]:
    """Runs every unfinished run in its own process, under a progress bar; returns failures."""
    pending = [r for r in runs if not (args.runs_dir / r.id / "result.json").exists()]
    failed = []
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), desc="batch_scaling",
               unit="run", dynamic_ncols=True)
    for run in pending:
        bar.set_postfix_str(run.id)
        (args.runs_dir / run.id).mkdir(parents=True, exist_ok=True)
        log_path = args.runs_dir / run.id / "run.log"
        started = time.time()
        with open(log_path, "a") as log:
            code = subprocess.call(run_command(run, args), stdout=log, stderr=subprocess.STDOUT,
                                   cwd=spec.ROOT)
        if code:
            failed.append(run.id)
            bar.write(f"{run.id}: FAILED (exit {code}); see {log_path}")
        else:
            result = json.loads((args.runs_dir / run.id / "result.json").read_text())
            bar.write(f"{run.id}: top-1 {result['zero_shot_top1']:.3f}, "
                      f"{time.time() - started:.0f} s")
        bar.update(1)
    bar.close()
    return failed


def collect(runs: list[spec.Run], runs_dir: Path) -> list[dict]:
    paths = [runs_dir / r.id / "result.json" for r in runs]
    return [json.loads(p.read_text()) for p in paths if p.exists()]


def write_report(rows: list[dict], study: spec.Study, losses: list[str], args) -> None:
    from contrastive.data import digits  # pylint: disable=import-outside-toplevel

    stem = "batch_scaling" + ("_fast" if args.fast else "")
    config, _ = spec.make_config(spec.Run(losses[0], study.batches[0], None), study)
    meta = {
        "eval_images": min(len(digits.load_split(config.data.eval_split)),
                           config.eval.max_examples),
        "command": shlex.join(["python", "experiments/batch_scaling.py"]
                              + (["--fast"] if args.fast else [])
                              + (["--losses", *args.losses] if args.losses else [])),
        "device": benchlib.device_description(), "losses": losses,
        "study": {**vars(study), "base_batch": spec.BASE_BATCH,
                  "warmup_fraction": spec.WARMUP_FRACTION},
        "learning_rate_rule": "peak = config lr * sqrt(batch / base_batch)",
        "runs_finished": len(rows),
        "written_at_commit": _code_version(),
    }
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    # The plots go next to the tables; the _fast suffix stays last so .gitignore's *_fast.*
    # keeps smoke outputs out of the repository.
    suffix = "_fast" if args.fast else ""
    report.plot_batch(rows, meta, args.out / f"batch_scaling_batch{suffix}.png")
    report.plot_temperature(rows, meta, args.out / f"batch_scaling_temperature{suffix}.png")
    benchlib.write_results(args.out, stem, meta, rows, report.tables(rows, meta))


def _code_version() -> str:
    """The commit the report was written at (runs may have been trained at earlier ones)."""
    describe = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=spec.ROOT,
                              capture_output=True, text=True, check=False)
    return describe.stdout.strip() or "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="3 tiny runs, outputs *_fast.*")
    parser.add_argument("--losses", nargs="+", help=f"default: those of {DEFAULT_LOSSES} "
                        "that exist")
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS, help="results directory")
    parser.add_argument("--runs_dir", type=Path, help="run directories (default OUT/"
                        "batch_scaling_runs[_fast]); may be shared by several hosts")
    parser.add_argument("--print_commands", action="store_true",
                        help="print one command per unfinished run and exit")
    parser.add_argument("--run", help="train and measure this one run id, then exit")
    parser.add_argument("--report", action="store_true",
                        help="only write the tables and plots from finished runs")
    args = parser.parse_args(argv)
    study = spec.FAST if args.fast else spec.FULL
    args.out = args.out.resolve()
    args.runs_dir = (args.runs_dir or args.out / (
        "batch_scaling_runs" + ("_fast" if args.fast else ""))).resolve()

    if args.run:
        run = spec.Run.from_id(args.run)
        available_losses([run.loss])
        result = spec.run_one(run, study, args.runs_dir)
        print(json.dumps(result))
        return 0
    losses = (["clip"] if args.fast and not args.losses else available_losses(args.losses))
    runs = plan_runs(study, losses)
    if args.print_commands:
        for run in runs:
            if not (args.runs_dir / run.id / "result.json").exists():
                print(shlex.join(run_command(run, args, portable=True)))
        return 0
    failed = [] if args.report else _prepare_and_execute(runs, args)
    write_report(collect(runs, args.runs_dir), study, losses, args)
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (logs in {args.runs_dir})")
    return 1 if failed else 0


def _prepare_and_execute(runs, args) -> list[str]:
    from contrastive.data import digits  # pylint: disable=import-outside-toplevel

    digits.prepare()  # once here, so the runs never race to build the dataset
    return execute(runs, args)


if __name__ == "__main__":
    sys.exit(main())
