"""Every loss of the zoo with the same budget on the embedded digits, and its cost at N = 16k.

    python experiments/loss_zoo.py            # 400 steps of 256 per run, 19 runs, N = 16,384
    python experiments/loss_zoo.py --fast     # a smoke run: 3 runs of 4 steps, N = 1,024
    python experiments/loss_zoo.py --only "pairs/z_loss,views/ntxent 4 views"
                                              # just these rows, merged into the saved JSON

Training (one process per run, `python -m contrastive.main`; a run whose summary.json exists is
skipped, a killed one resumes from its checkpoint, so a killed study picks up where it stopped):
  - pairs: configs/digits_clip.py (image-caption pairs); held-out zero-shot top-1 and a linear
    probe on the frozen image features;
  - views: configs/digits_simclr.py (two augmented views of an image); held-out 1-NN and a
    linear probe on the frozen backbone features.
Every run of a setting has the same steps, batch, model, optimiser and seed; only config.loss and
config.loss_options change. `supcon` reads the class labels (supervised): it is the table's
upper reference, not a competitor.

Cost: forward + backward (gradients of x, y and the scale) of each loss function on random unit
embeddings, N = 16,384, d = 128, float32, one CPU device, each in its own process: the extra
peak resident memory of the first call and the median time of further calls.

Results: experiments/results/loss_zoo{,_fast}.{json,md,png}; run directories under
experiments/results/loss_zoo_runs/ (not committed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

import benchlib

ROOT = Path(__file__).resolve().parents[1]
# (row name, config.loss, config.loss_options)
PAIRS = [
    ("clip", "clip", {}),
    ("siglip", "siglip", {}),
    ("ntxent", "ntxent", {}),
    ("supcon (labels)", "supcon", {}),
    ("dcl", "dcl", {}),
    ("dclw", "dcl", {"sigma": 0.5}),
    ("hard_negative", "hard_negative", {"beta": 1.0}),
    ("hard_negative debiased", "hard_negative", {"beta": 1.0, "tau_plus": 0.1}),
    ("cwcl", "cwcl", {}),
    ("clip_geometry", "clip_geometry", {"alignment_weight": 0.5, "uniformity_weight": 0.5}),
    ("auc", "auc", {}),
    ("isogclr", "isogclr", {}),
    ("clip label smoothing", "clip", {"label_smoothing": 0.1}),
    ("siglip label smoothing", "siglip", {"label_smoothing": 0.1}),
    ("z_loss", "z_loss", {}),
    ("gram", "gram", {}),
    ("clip mixup", "clip", {}),
    ("amcl", "amcl", {}),
    ("mochi", "mochi", {}),
    ("clip mlp head", "clip", {}),
    ("clip patch dropout 0.5", "clip", {}),
    ("coca", "clip", {}),
]
VIEWS = [
    ("clip (cross-view)", "clip", {}),
    ("ntxent", "ntxent", {}),
    ("ntxent decoupled (dcl)", "ntxent", {"decoupled": True}),
    ("supcon (labels)", "supcon", {}),
    ("dclw", "dcl", {"sigma": 0.5}),
    ("hard_negative", "hard_negative", {"beta": 1.0}),
    ("auc", "auc", {}),
    ("ntxent 4 views", "ntxent", {}),
    ("gram 3 views", "gram", {}),
    ("ntxent mixup", "ntxent", {}),
    ("amcl", "amcl", {}),
    ("mochi", "mochi", {}),
    ("swav", "swav", {}),
    ("swav multi-crop", "swav", {}),
]
# Rows that change more than the loss: their extra flags (the same budget and seed otherwise).
# SwAV: 30 prototypes for the 10 digit classes (SwAV's 3,000 for ImageNet's 1,000); multi-crop:
# 2 global views and 2 small crops of a (0.2, 0.5) area (the global ones' (0.5, 1)), all 8 x 8.
SWAV = ["--config.model.num_prototypes=30"]
EXTRA_FLAGS = {("views", "ntxent 4 views"): ["--config.model.num_views=4"],
               ("views", "gram 3 views"): ["--config.model.num_views=3"],
               ("pairs", "clip mixup"): ["--config.mixup.alpha=1.0"],
               ("views", "ntxent mixup"): ["--config.mixup.alpha=1.0"],
               ("pairs", "clip mlp head"): ["--config.model.mlp_head=True",
                                            "--config.model.head_hidden_dim=128"],
               ("pairs", "clip patch dropout 0.5"): [
                   "--config.model.image_options={'width': 64, 'mlp_dim': 128, 'num_heads': 2, "
                   "'depth': 2, 'patch_dropout': 0.5}"],  # digits_clip's tower, half its patches
               ("pairs", "coca"): [  # configs/digits_coca.py's decoder
                   "--config.model.caption_weight=1.0",
                   "--config.model.captioner={'width': 64, 'depth': 2, 'mlp_dim': 128, "
                   "'num_heads': 2}"],
               ("views", "swav"): SWAV,
               ("views", "swav multi-crop"): SWAV + ["--config.model.num_views=4",
                                                     "--config.data.small_crop_scale=(0.2, 0.5)"]}
SETTINGS = {"pairs": ("configs/digits_clip.py", PAIRS), "views": ("configs/digits_simclr.py", VIEWS)}
FAST_RUNS = [("pairs", "clip", "clip", {}), ("pairs", "dcl", "dcl", {}),
             ("views", "ntxent", "ntxent", {})]


def run_command(config_file: str, loss: str, options: dict, workdir: Path, steps: int,
                fast: bool, extra=()) -> list[str]:
    """One run = one command (also how to fan the study out over machines)."""
    config = config_file + (":runlocal" if fast else "")
    return [sys.executable, "-m", "contrastive.main", f"--config={config}",
            f"--workdir={workdir}", f"--config.loss={loss}",
            # ml_collections reads a dict flag as a Python literal (True, not JSON's true).
            f"--config.loss_options={options!r}", f"--config.total_steps={steps}",
            "--config.eval_every=0", "--config.checkpoint_every=100", "--config.eval.linear_probe=True",
            "--config.progress_bar=False", "--config.plots=False", *extra]


def train_all(runs, out: Path, steps: int, fast: bool) -> list[dict]:
    rows = []
    for setting, row, loss, options in tqdm(runs, desc="zoo runs", unit="run"):
        workdir = out / f"loss_zoo_runs{'_fast' if fast else ''}" / setting / row.replace(" ", "_")
        summary_path = workdir / "summary.json"
        if not summary_path.exists():
            cmd = run_command(SETTINGS[setting][0], loss, options, workdir, steps, fast,
                              EXTRA_FLAGS.get((setting, row), ()))
            started = time.time()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  env=dict(os.environ, JAX_PLATFORMS="cpu"))
            if proc.returncode != 0:
                tqdm.write(f"{setting}/{row} failed:\n{proc.stderr[-1500:]}")
                rows.append({"setting": setting, "name": row, "loss": loss, "options": options,
                             "error": proc.stderr[-500:]})
                continue
            tqdm.write(f"{setting}/{row}: {time.time() - started:.0f} s")
        summary = json.loads(summary_path.read_text())
        rows.append({"setting": setting, "name": row, "loss": loss, "options": options,
                     "final_loss": summary.get("loss"),
                     "zero_shot_top1": summary.get("zero_shot_top1"),
                     "knn_top1": summary.get("knn_top1"),
                     "linear_probe_top1": summary.get("linear_probe_top1"),
                     "train_wall_s": summary.get("wall_time_s")})
    return rows


def cost_worker(loss: str, n: int, d: int, repeats: int) -> dict:
    """fwd+bwd of one loss at (n, d) in this process (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from contrastive import parallel
    from contrastive.train import losses

    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    x, y = (jnp.asarray(a / np.linalg.norm(a, axis=1, keepdims=True)) for a in (x, y))
    labels = jnp.asarray(rng.integers(0, 10, n), jnp.int32)
    name, options = loss.split(":", 1) if ":" in loss else (loss, "{}")
    mesh = parallel.make_mesh({"data": 1}, devices=jax.devices()[:1])
    fn = losses.bind(name, mesh, options=json.loads(options))
    rows = losses.gather(fn.initial_state(n), jnp.arange(n))

    def scalar_loss(x, y, scale):
        return fn(x, y, scale, jnp.float32(-10.0), labels, rows)[0]

    compiled = jax.jit(jax.value_and_grad(scalar_loss, argnums=(0, 1, 2))).lower(
        x, y, jnp.float32(10.0)).compile()
    return {"loss": loss, "n": n, "d": d, **benchlib.memory_analysis(compiled),
            **benchlib.first_run_peak_and_times(compiled, (x, y, jnp.float32(10.0)), repeats)}


def measure_costs(n: int, d: int, repeats: int, runs) -> dict:
    costs = {}
    specs = {json.dumps([loss, options]) for _, _, loss, options in runs}
    for spec in tqdm(sorted(specs), desc=f"cost at N={n:,}", unit="loss"):
        loss, options = json.loads(spec)
        arg = loss if not options else f"{loss}:{json.dumps(options, separators=(',', ':'))}"
        costs[spec] = benchlib.run_in_subprocess(__file__, [arg, n, d, repeats])
    return costs


def to_markdown(rows, meta) -> str:
    lines = [f"Loss zoo on the embedded digits ({meta['steps']} steps of batch "
             f"{meta['batch']}, same model/optimiser/seed per setting) and loss cost at "
             f"N = {meta['n']:,}, d = {meta['d']} (fwd+bwd, float32, {meta['device']}). "
             f"Command: `{meta['command']}`.", ""]
    for added in meta.get("rows_added", []):
        lines += [f"Added later (`{added}`), the same budget and seed; timed on the machine of "
                  "that day, so compare their fwd+bwd times with each other, not with the rows "
                  "above.", ""]
    for setting, metric in (("pairs", "zero_shot_top1"), ("views", "knn_top1")):
        lines += [f"**{setting}** ({SETTINGS[setting][0]})", "",
                  f"| loss | options | {metric} | linear probe top-1 | final loss | "
                  "fwd+bwd time (s) | extra peak (MiB) |", "|---|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            if r["setting"] != setting:
                continue
            acc = lambda k: "-" if r.get(k) is None else f"{r[k]:.3f}"
            lines.append(f"| {r['name']} | {json.dumps(r['options']) if r['options'] else ''} | "
                         f"{acc(metric)} | {acc('linear_probe_top1')} | {acc('final_loss')} | "
                         f"{benchlib.seconds(r.get('time_s'))} | "
                         f"{benchlib.mib(r.get('extra_peak_bytes'))} |")
        lines.append("")
    return "\n".join(lines)


def plot(rows):
    import matplotlib.pyplot as plt

    def draw(path):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        for ax, (setting, metric) in zip(axes, (("pairs", "zero_shot_top1"), ("views", "knn_top1"))):
            chosen = [r for r in rows if r["setting"] == setting and r.get(metric) is not None]
            names = [r["name"] for r in chosen]
            ax.barh(names, [r[metric] for r in chosen], label=metric, alpha=0.8)
            ax.barh(names, [r.get("linear_probe_top1") or 0 for r in chosen], height=0.3,
                    label="linear probe top-1")
            ax.set(xlim=(0, 1), title=f"{setting}: held-out accuracy")
            ax.invert_yaxis()
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
            ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=120)

    return draw


def merge_rows(path: Path, new_rows: list, meta: dict):
    """The saved rows with `new_rows` put in place of same-named ones (else appended in the
    table's order); the saved meta, plus the command that added rows."""
    saved = json.loads(path.read_text()) if path.exists() else {"meta": meta, "rows": []}
    by_key = {(r["setting"], r["name"]): r for r in saved["rows"]}
    by_key.update({(r["setting"], r["name"]): r for r in new_rows})
    order = [(setting, row) for setting, (_, runs) in SETTINGS.items() for row, *_ in runs]
    rows = [by_key[k] for k in order if k in by_key]
    rows += [r for k, r in by_key.items() if k not in order]
    added = ",".join(f"{r['setting']}/{r['name']}" for r in new_rows)
    meta = {**saved["meta"], "rows_added": saved["meta"].get("rows_added", []) + [
        f'python experiments/loss_zoo.py --only "{added}"']}
    return rows, meta


def main():
    parser = benchlib.arg_parser(__doc__, worker_fields=4)
    parser.add_argument("--steps", type=int, default=400, help="training steps per run")
    parser.add_argument("--print_commands", action="store_true",
                        help="print one command per training run (to fan out) and exit")
    parser.add_argument("--only", default="",
                        help="comma-separated setting/row names (e.g. 'pairs/z_loss'): run just "
                             "these and merge them into the saved JSON's rows")
    parser.add_argument("--report", action="store_true",
                        help="rewrite the table and plot from the saved JSON, measuring nothing")
    args = parser.parse_args()
    stem = "loss_zoo_fast" if args.fast else "loss_zoo"
    if args.report:
        saved = json.loads((args.out / f"{stem}.json").read_text())
        benchlib.write_results(args.out, stem, saved["meta"], saved["rows"],
                               to_markdown(saved["rows"], saved["meta"]), plot(saved["rows"]))
        return
    if args.worker:
        loss, n, d, repeats = args.worker
        print(json.dumps(cost_worker(loss, int(n), int(d), int(repeats))))
        return
    runs = FAST_RUNS if args.fast else [
        (setting, *run) for setting, (_, runs) in SETTINGS.items() for run in runs]
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        known = {f"{setting}/{row}" for setting, row, _, _ in runs}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise SystemExit(f"--only: unknown rows {unknown}; rows: {sorted(known)}")
        runs = [r for r in runs if f"{r[0]}/{r[1]}" in wanted]
    steps = 4 if args.fast else args.steps
    if args.print_commands:
        for setting, row, loss, options in runs:
            workdir = args.out / "loss_zoo_runs" / setting / row.replace(" ", "_")
            print(" ".join(f'"{c}"' if "{" in c or " " in c else c for c in run_command(
                SETTINGS[setting][0], loss, options, workdir, steps, args.fast,
                EXTRA_FLAGS.get((setting, row), ()))))
        return
    n, d = (1024, 64) if args.fast else (16384, 128)
    rows = train_all(runs, args.out, steps, args.fast)
    costs = measure_costs(n, d, args.repeats or (2 if args.fast else 3),
                          [r for r in runs if (r[0], r[1]) not in EXTRA_FLAGS])
    for r in rows:
        if (r["setting"], r["name"]) in EXTRA_FLAGS:
            continue  # the cost worker runs two views of the plain loss: not this row's cost
        cost = costs.get(json.dumps([r["loss"], r["options"]]), {})
        r.update({k: cost.get(k) for k in ("time_s", "extra_peak_bytes", "temp_bytes", "error")
                  if cost.get(k) is not None})
    meta = {"device": benchlib.device_description(), "steps": steps,
            "batch": 16 if args.fast else 256, "n": n, "d": d,
            "command": "python experiments/loss_zoo.py" + (" --fast" if args.fast else "")}
    if args.only:
        rows, meta = merge_rows(args.out / f"{stem}.json", rows, meta)
    benchlib.write_results(args.out, stem, meta, rows,
                           to_markdown(rows, meta), plot(rows))


if __name__ == "__main__":
    main()
