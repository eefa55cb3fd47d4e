"""Dense vs blockwise contrastive loss: forward+backward time and peak memory, one device.

    python experiments/loss_memory.py            # full sweep, N = 1k .. 32k (~10 min on 2 cores)
    python experiments/loss_memory.py --fast     # a smoke run in seconds (N = 512 .. 2k)

Every figure comes from its own process, so one run's allocations cannot hide in another's. Each
worker compiles `jit(value_and_grad(loss))` (gradients for x, y, scale and bias) ahead of time,
resets the kernel's peak-RSS counter, runs it once and reports
  - extra_peak_bytes: peak resident memory during that first run minus the resident memory
    before it (inputs, compiled code and the runtime excluded: what the loss itself costs);
  - temp_bytes: XLA's own count of the compiled program's temporaries;
  - time_s: the median of several further runs.
Results: experiments/results/loss_memory{,_fast}.{json,md,png}.
"""
from __future__ import annotations

import json
import statistics

from tqdm import tqdm

import benchlib

# Cases whose temporaries would not fit in RAM get XLA's figure only.
MAX_RUNNABLE_TEMP_BYTES = 16 * 2**30
FULL_CASES = [("clip", n, 128) for n in (1024, 2048, 4096, 8192, 16384, 32768)] + [
    ("clip", 8192, 256), ("siglip", 8192, 256), ("siglip", 32768, 128)
]
FAST_CASES = [("clip", n, 64) for n in (512, 1024, 2048)] + [("siglip", 2048, 64)]
IMPLS = ("dense", "blockwise")


def worker(impl: str, loss: str, n: int, d: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from contrastive.losses import clip_loss, reference, siglip_loss

    fns = {
        ("dense", "clip"): lambda x, y, s, b: reference.clip_loss_dense(x, y, s),
        ("dense", "siglip"): reference.siglip_loss_dense,
        ("blockwise", "clip"): lambda x, y, s, b: clip_loss(x, y, s),
        ("blockwise", "siglip"): siglip_loss,
    }
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    args = tuple(jnp.asarray(a / np.linalg.norm(a, axis=1, keepdims=True)) for a in (x, y))
    args += (jnp.float32(10.0), jnp.float32(-10.0))
    compiled = jax.jit(jax.value_and_grad(fns[impl, loss], argnums=(0, 1, 2, 3))).lower(*args).compile()
    row = {"impl": impl, "loss": loss, "n": n, "d": d, **benchlib.memory_analysis(compiled)}
    if row["temp_bytes"] > MAX_RUNNABLE_TEMP_BYTES:
        return row | {"skipped": "temporaries exceed the RAM budget"}
    return row | benchlib.first_run_peak_and_times(compiled, args, repeats)


def to_markdown(rows, meta) -> str:
    lines = [
        f"Dense vs blockwise loss, forward+backward (grads of x, y, scale, bias), float32, "
        f"{meta['device']}. Command: `{meta['command']}`.",
        "",
        "| loss | N | d | dense time (s) | blockwise time (s) | blockwise / dense time "
        "| dense extra peak (MiB) | blockwise extra peak (MiB) | dense XLA temp (MiB) "
        "| blockwise XLA temp (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (loss, n, d), pair in _by_case(rows):
        dense, block = pair.get("dense", {}), pair.get("blockwise", {})
        dt, bt = dense.get("time_s"), block.get("time_s")
        lines.append(
            f"| {loss} | {n} | {d} | {benchlib.seconds(dt)} | {benchlib.seconds(bt)} "
            f"| {f'{bt / dt:.2f}' if dt and bt else '-'} "
            f"| {benchlib.mib(dense.get('extra_peak_bytes'))} "
            f"| {benchlib.mib(block.get('extra_peak_bytes'))} "
            f"| {benchlib.mib(dense.get('temp_bytes'))} | {benchlib.mib(block.get('temp_bytes'))} |"
        )
    lines += ["", "Extra peak: peak RSS during the first run minus RSS before it (inputs "
              "excluded). XLA temp: the compiled program's temporaries. Time: median of further "
              "runs. '-': not run (temporaries beyond the RAM budget) or failed."]
    return "\n".join(lines) + "\n"


def _by_case(rows):
    cases = {}
    for r in rows:
        cases.setdefault((r["loss"], r["n"], r["d"]), {})[r["impl"]] = r
    return sorted(cases.items())


def plot(rows, path, title):
    import matplotlib.pyplot as plt

    sweep_d = statistics.mode(r["d"] for r in rows if r["loss"] == "clip")
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for impl, style, color in (("dense", "o-", "C0"), ("blockwise", "s-", "C1")):
        sweep = sorted((r["n"], r) for r in rows if r["impl"] == impl and r["loss"] == "clip"
                       and r["d"] == sweep_d and "error" not in r)
        timed = [(n, r["time_s"]) for n, r in sweep if "time_s" in r]
        if timed:
            ax_t.plot(*zip(*timed), style, color=color, label=impl)
        mem = [(n, r.get("extra_peak_bytes", r["temp_bytes"]) / 2**20) for n, r in sweep]
        ax_m.plot(*zip(*mem), style, color=color, label=impl)
        # A case too large to run shows XLA's count of its temporaries, as a hollow marker.
        estimated = [(n, r["temp_bytes"] / 2**20) for n, r in sweep if "skipped" in r]
        if estimated:
            ax_m.plot(*zip(*estimated), style[0], color=color, mfc="white", ms=10,
                      label=f"{impl}: XLA count, too large to run")
    benchlib.log_log_axes(
        [(ax_t, "forward+backward time (s)"), (ax_m, "extra peak memory (MiB)")], "batch size N"
    )
    fig.suptitle(f"{title}, d = {sweep_d}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = benchlib.arg_parser(__doc__, worker_fields=5)
    args = parser.parse_args()
    if args.worker:
        impl, loss, n, d, repeats = args.worker
        print(json.dumps(worker(impl, loss, int(n), int(d), int(repeats))))
        return

    cases = FAST_CASES if args.fast else FULL_CASES
    rows = []
    for impl, loss, n, d in tqdm([(i, *c) for c in cases for i in IMPLS], desc="loss_memory"):
        repeats = args.repeats or (3 if args.fast or n >= 16384 else 5)
        row = benchlib.run_in_subprocess(__file__, [impl, loss, n, d, repeats])
        rows.append({"impl": impl, "loss": loss, "n": n, "d": d} | row)
        tqdm.write(json.dumps({k: v for k, v in rows[-1].items() if k != "times_s"}))

    meta = {"command": "python experiments/loss_memory.py" + (" --fast" if args.fast else ""),
            "device": benchlib.device_description()}
    title = f"CLIP loss, dense vs blockwise ({meta['device']})"
    benchlib.write_results(args.out, "loss_memory_fast" if args.fast else "loss_memory", meta,
                           rows, to_markdown(rows, meta), lambda p: plot(rows, p, title))


if __name__ == "__main__":
    main()
