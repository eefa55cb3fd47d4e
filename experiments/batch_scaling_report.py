"""The batch-scaling study's Markdown tables and PNG plots, from the runs' result rows."""
from __future__ import annotations

from pathlib import Path


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _by(rows: list[dict], **match) -> dict | None:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return found[0] if found else None


def tables(rows: list[dict], meta: dict) -> str:
    """Accuracy by batch and loss (learnable temperature), then the temperature sweep."""
    losses, study = meta["losses"], meta["study"]
    lines = [
        (f"Held-out zero-shot top-1 on {meta['eval_images']} held-out digits after "
         f"{study['examples']:,} training examples seen by every run; learnable temperature. "
         f"Command: `{meta['command']}` ({meta['device']})."), "",
        "| batch | micro-batches | steps | peak lr | " + " | ".join(losses) + " |",
        "|---:|---:|---:|---:|" + "---:|" * len(losses),
    ]
    for batch in study["batches"]:
        cells = [_by(rows, loss=l, batch=batch, temperature_mode="learnable") for l in losses]
        plan = next((c for c in cells if c), None) or {}
        accuracies = [_fmt(c and c["zero_shot_top1"], ".3f") for c in cells]
        lines.append(f"| {batch} | {plan.get('microbatches', '-')} | {plan.get('steps', '-')} | "
                     f"{_fmt(plan.get('learning_rate'), '.2e')} | " + " | ".join(accuracies) + " |")
    lines += [
        "", (f"Temperature at batch {study['temperature_batch']} (fixed, or learnable from the "
             "loss's config default: final value shown). Alignment E||x - y||^2 of held-out "
             "image / caption pairs (lower: positives closer); uniformity log E "
             "exp(-2||u - v||^2) over image pairs and caption pairs (lower: more spread)."), "",
        ("| loss | temperature | top-1 | alignment | uniformity (images) | uniformity (captions) "
         "| modality gap |"),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for loss in losses:
        for t in [*study["temperatures"], None]:
            match = {"temperature_mode": "learnable"} if t is None else {"temperature_init": t,
                                                                         "temperature_mode": "fixed"}
            r = _by(rows, loss=loss, batch=study["temperature_batch"], **match)
            label = f"learnt {_fmt(r and r['final_temperature'], '.3f')}" if t is None else f"{t:g}"
            lines.append(f"| {loss} | {label} | " + " | ".join(_fmt(r and r.get(k), f) for k, f in (
                ("zero_shot_top1", ".3f"), ("alignment", ".3f"), ("uniformity_x", ".3f"),
                ("uniformity_y", ".3f"), ("modality_gap", ".3f"))) + " |")
    return "\n".join(lines) + "\n"


def plot_batch(rows: list[dict], meta: dict, path: Path) -> None:
    """Held-out accuracy and the learnt temperature against batch size, one line per loss."""
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, (acc, temp) = plt.subplots(1, 2, figsize=(10, 3.8))
    for loss in meta["losses"]:
        points = sorted((r["batch"], r["zero_shot_top1"], r["final_temperature"]) for r in rows
                        if r["loss"] == loss and r["temperature_mode"] == "learnable")
        if points:
            batches, accuracies, temperatures = zip(*points)
            acc.plot(batches, accuracies, marker="o", label=loss)
            temp.plot(batches, temperatures, marker="o", label=loss)
    micro = meta["study"]["max_microbatch"]
    for ax, label in ((acc, "held-out zero-shot top-1"), (temp, "learnt temperature")):
        ax.axvline(micro, color="grey", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(meta["study"]["batches"], [str(b) for b in meta["study"]["batches"]])
        ax.set(xlabel="global batch (right of dotted line: gradient accumulation)", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    temp.set_yscale("log")
    fig.suptitle(f"equal examples seen ({meta['study']['examples']:,}), sqrt learning-rate rule")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_temperature(rows: list[dict], meta: dict, path: Path) -> None:
    """Accuracy, alignment and uniformity against temperature; learnable runs as stars at
    their final temperature."""
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    batch = meta["study"]["temperature_batch"]
    panels = (("zero_shot_top1", "held-out zero-shot top-1"), ("alignment", "alignment (lower: closer)"),
              ("uniformity_x", "uniformity of images (lower: spread)"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for index, loss in enumerate(meta["losses"]):
        color = f"C{index}"
        fixed = sorted((r["temperature_init"], r) for r in rows if r["loss"] == loss
                       and r["batch"] == batch and r["temperature_mode"] == "fixed")
        learnt = _by(rows, loss=loss, batch=batch, temperature_mode="learnable")
        for ax, (key, label) in zip(axes, panels):
            points = [(t, r[key]) for t, r in fixed if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", color=color, label=f"{loss}, fixed")
            if learnt and learnt.get(key) is not None:
                ax.plot(learnt["final_temperature"], learnt[key], marker="*", ms=14, ls="none",
                        color=color, label=f"{loss}, learnt")
            ax.set_xscale("log")
            temperatures = meta["study"]["temperatures"]
            ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
            ax.set(xlabel="temperature", ylabel=label)
            ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"temperature at batch {batch}: the uniformity-tolerance trade-off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
