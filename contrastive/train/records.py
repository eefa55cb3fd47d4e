"""A run's records: metrics.jsonl and eval.jsonl (one JSON object per line, each with its
"step"), and their curves drawn as PNG plots at the end."""
import json
import math
import os

# A bare Figure draws straight to a file: no pyplot, so importing this module leaves the user's
# backend alone (a notebook keeps its inline plots).
from matplotlib.figure import Figure


def write_atomically(path: str, content: str | bytes) -> None:
    """Writes `content` (text or bytes) to a temporary file beside `path`, then renames it over
    `path`: a reader (or a crash) sees the old file or the new one, never a half-written one."""
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):  # e.g. the disk is full: the old file stays whole
            os.remove(temporary)
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror, path) from error


def read_jsonl(path: str) -> list[dict]:
    """Every complete, parseable line of a JSON-lines file (a half-written last line, left by
    a killed process, is ignored)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _ends_whole(path: str) -> bool:
    """Whether the file's last line is complete (a killed writer leaves half a line)."""
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class JsonlWriter:
    """Appends records; on a resumed run it first drops the records of steps after the
    checkpoint (they are about to be recomputed), so the file reads as one uninterrupted run.
    That rewrite is atomic: a full disk leaves the old file as it was.

    Only the writing process (process 0) passes enabled=True; the others write nothing.
    """

    def __init__(self, path: str, resume_step: int, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        if not (os.path.exists(path) and os.path.getsize(path)):
            return
        records = read_jsonl(path)
        kept = [r for r in records if r.get("step", 0) <= resume_step]
        if len(kept) < len(records) or not _ends_whole(path):  # rewritten whole, or not at all
            write_atomically(path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, records: list[dict]) -> None:
        if not self.enabled or not records:
            return
        try:
            with open(self.path, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
                f.flush()
        except OSError as error:  # a failed write() names no file: say which
            if error.filename is not None:
                raise
            raise OSError(error.errno, error.strerror, self.path) from error


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
