"""The tables and plots of experiments/loss_gpu.py: Markdown from its rows, the three-panel PNG
(time, memory, TFLOP/s against N), and the largest N that ran per implementation."""
from __future__ import annotations

import benchlib

IMPLS = ("xla", "pallas", "dense")


def fits(row) -> bool:
    return "time_s" in row


def largest_fitting(rows, impl, d):
    ok = [r["n"] for r in rows if r["impl"] == impl and r["d"] == d and fits(r)]
    return max(ok) if ok else None


def to_markdown(rows, meta) -> str:
    peak = meta["peak_tflops"]
    lines = [
        f"Loss forward+backward (grads of x, y, scale, bias), {meta['dtype']}, "
        f"{meta['device']}. Command: `{meta['command']}`.",
        "",
        f"TFLOP/s by the model 8 N^2 d per step; fraction of a {peak:g} TFLOP/s peak "
        f"({meta['peak_note']}). Executed TFLOP/s counts what each implementation runs "
        "(dense 6 N^2 d, XLA engine 8, Pallas CLIP 12, Pallas SigLIP 10).",
        "",
        "| loss | d | N | impl | time (ms) | peak memory (MiB) | peak - inputs (MiB) "
        "| TFLOP/s (model) | fraction of peak | executed TFLOP/s | note |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    key = lambda r: (r["loss"], r["d"], r["n"], IMPLS.index(r["impl"]))
    for r in sorted(rows, key=key):
        t = r.get("time_s")
        note = "largest-N search" if r.get("search") else ""
        if r.get("peak_source") == "xla":
            note = (note + "; " if note else "") + "memory: XLA's count (no device statistics)"
        if "skipped" in r:
            note = "does not fit (XLA's count: " + benchlib.mib(r["total_bytes"]) + " MiB)"
        elif "error" in r:
            note = "failed: " + r["error"].splitlines()[-1][:80].replace("|", "/")
        lines.append(
            f"| {r['loss']} | {r['d']} | {r['n']} | {r['impl']} "
            f"| {'-' if t is None else f'{1e3 * t:.1f}'} | {benchlib.mib(r.get('peak_bytes'))} "
            f"| {benchlib.mib(_extra(r))} "
            f"| {_fmt(r.get('model_tflops'))} "
            f"| {_fmt(r.get('model_tflops') and r['model_tflops'] / peak, '.1%')} "
            f"| {_fmt(r.get('executed_tflops'))} | {note} |"
        )
    lines += ["", "Largest N that ran (powers of two, searched at d = "
              f"{meta['fit_d']} up to {meta['max_fit_n']}):", ""]
    for loss in sorted({r["loss"] for r in rows}):
        found = {impl: largest_fitting([r for r in rows if r["loss"] == loss], impl,
                                       meta["fit_d"]) for impl in IMPLS}
        lines.append(f"- {loss}: " + ", ".join(f"{impl} {n or '-'}" for impl, n in found.items()))
    target = [r for r in rows if r["impl"] == "pallas" and r["loss"] == "clip"
              and r["n"] == 65536 and r["d"] == 1024 and "model_tflops" in r]
    if target:
        lines += ["", f"Target (Pallas CLIP, N = 65,536, d = 1,024, >= 50% of peak): "
                      f"{target[0]['model_tflops'] / peak:.1%}."]
    return "\n".join(lines) + "\n"


def _extra(r):
    """Device peak minus the inputs resident before the run: what the loss step itself costs."""
    if r.get("peak_source") != "device" or r.get("inputs_bytes") is None:
        return None
    return r["peak_bytes"] - r["inputs_bytes"]


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def plot(rows, path, title, peak):
    import matplotlib.pyplot as plt

    widths = sorted({r["d"] for r in rows})
    on_device = all(r.get("peak_source") == "device" for r in rows if fits(r))

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    styles = {"dense": ("o", "C0"), "xla": ("s", "C1"), "pallas": ("^", "C2")}
    for loss, dash in (("clip", "-"), ("siglip", ":")):
        for d in widths:
            for impl, (marker, color) in styles.items():
                sweep = sorted((r["n"], r) for r in rows if r["impl"] == impl and r["d"] == d
                               and r["loss"] == loss and fits(r))
                if not sweep:
                    continue
                label = f"{impl} {loss}, d={d}"
                first = d == widths[0]  # filled markers for the narrower embeddings
                line = dict(marker=marker, color=color, ls=dash, alpha=1.0 if first else 0.6,
                            mfc=color if first else "white", label=label)
                ns = [n for n, _ in sweep]
                axes[0].plot(ns, [r["time_s"] for _, r in sweep], **line)
                axes[1].plot(ns, [r["peak_bytes"] / 2**20 for _, r in sweep], **line)
                axes[2].plot(ns, [r["model_tflops"] for _, r in sweep], **line)
    if on_device:  # a CPU smoke run is nowhere near an accelerator's peak
        axes[2].axhline(0.5 * peak, color="grey", ls="--", lw=1, label="50% of peak")
    benchlib.log_log_axes([(axes[0], "forward+backward time (s)"),
                           (axes[1], "peak device memory (MiB)" if on_device
                            else "XLA's memory count (MiB)"),
                           (axes[2], "TFLOP/s (model 8 N^2 d)")], "batch size N")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
