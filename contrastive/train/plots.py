"""PNG plots of a run's curves, written at the end from metrics.jsonl and eval.jsonl."""
import math
import os

# A bare Figure draws straight to a file: no pyplot, so importing this module leaves the user's
# backend alone (a notebook keeps its inline plots).
from matplotlib.figure import Figure


def plot_curves(records: list[dict], keys: list[str], path: str, title: str,
                columns: int = 4) -> bool:
    """One panel per key present in records, value against step, `columns` panels a row;
    False if no key is present."""
    keys = [k for k in keys if any(k in r for r in records)]
    if not keys:
        return False
    cols = min(columns, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in records if key in r]
        ax.plot(*zip(*points), marker="o" if len(points) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def write_plots(workdir: str, metrics: list[dict], evaluations: list[dict]) -> list[str]:
    """loss.png (loss, temperature, learning rate) and eval.png (every evaluation metric)."""
    written = []
    loss_png = os.path.join(workdir, "loss.png")
    keys = ["loss", "temperature", "learning_rate", "mean_tau_x", "mean_tau_y"]
    if plot_curves(metrics, keys, loss_png, "training"):
        written.append(loss_png)
    eval_keys = sorted({k for r in evaluations for k in r if k not in ("step", "wall_time_s")})
    eval_png = os.path.join(workdir, "eval.png")
    if plot_curves(evaluations, eval_keys, eval_png, "evaluation"):
        written.append(eval_png)
    return written
