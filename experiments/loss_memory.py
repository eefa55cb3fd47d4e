"""Dense vs blockwise contrastive loss: forward+backward time and peak memory.

    python experiments/loss_memory.py            # full sweep, N = 1k .. 32k (~10 min on 2 cores)
    python experiments/loss_memory.py --fast     # a one-minute smoke run (N = 512 .. 2k)

Every figure comes from its own process (`--worker`), so one run's allocations cannot hide in
another's. Each worker compiles `jit(value_and_grad(loss))` ahead of time, resets the kernel's
peak-RSS counter (/proc/self/clear_refs), runs it once and reports:
  - extra_peak_bytes: peak resident memory during that first run minus the resident memory
    before it (inputs, compiled code and the runtime excluded: what the loss itself costs);
  - xla_temp_bytes: XLA's own count of the temporaries of the compiled program;
  - time_s: the median of several timed runs after compilation.
Results go to experiments/results/loss_memory{,_fast}.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# Skip (and report XLA's figure only) when the program's temporaries would not fit in RAM.
MAX_RUNNABLE_TEMP_BYTES = 16 * 2**30

FULL_CASES = (
    [("clip", n, 128) for n in (1024, 2048, 4096, 8192, 16384, 32768)]
    + [("clip", 8192, 256), ("siglip", 8192, 256), ("siglip", 32768, 128)]
)
FAST_CASES = [("clip", n, 64) for n in (512, 1024, 2048)] + [("siglip", 2048, 64)]
IMPLS = ("dense", "blockwise")


# ---------------------------------------------------------------------------------------------
# Worker: one (impl, loss, N, d) measured in this process.


def _memory_status() -> dict:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def run_worker(impl: str, loss: str, n: int, d: int, repeats: int) -> dict:
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
    x, y = (jnp.asarray(a / np.linalg.norm(a, axis=1, keepdims=True)) for a in (x, y))
    scale, bias = jnp.float32(10.0), jnp.float32(-10.0)

    step = jax.jit(jax.value_and_grad(fns[impl, loss], argnums=(0, 1, 2, 3)))
    compiled = step.lower(x, y, scale, bias).compile()
    result = {"impl": impl, "loss": loss, "n": n, "d": d,
              "xla_temp_bytes": int(compiled.memory_analysis().temp_size_in_bytes)}
    if result["xla_temp_bytes"] > MAX_RUNNABLE_TEMP_BYTES:
        return result | {"skipped": "temporaries exceed the RAM budget"}

    # Peak of the first run: later runs would reuse buffers the allocator kept from it.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    before = _memory_status()["VmRSS"]
    jax.block_until_ready(compiled(x, y, scale, bias))
    result["extra_peak_bytes"] = _memory_status()["VmHWM"] - before
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(x, y, scale, bias))
        times.append(time.perf_counter() - start)
    result["time_s"] = statistics.median(times)
    result["times_s"] = times
    return result


# ---------------------------------------------------------------------------------------------
# Driver: spawn the workers, then write JSON, Markdown and a plot.


def measure(impl, loss, n, d, repeats) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, loss, str(n), str(d), str(repeats)]
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        return {"impl": impl, "loss": loss, "n": n, "d": d, "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mib(b):
    return "-" if b is None else f"{b / 2**20:,.0f}"


def to_markdown(rows, meta) -> str:
    lines = [
        f"Dense vs blockwise loss, forward+backward, float32, {meta['device']} "
        f"(`{meta['command']}`).",
        "",
        "| loss | N | d | dense time (s) | blockwise time (s) | time ratio block/dense "
        "| dense extra peak (MiB) | blockwise extra peak (MiB) | dense XLA temp (MiB) "
        "| blockwise XLA temp (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (loss, n, d), pair in _pairs(rows):
        dense, block = pair.get("dense", {}), pair.get("blockwise", {})
        dt, bt = dense.get("time_s"), block.get("time_s")
        ratio = f"{bt / dt:.2f}" if dt and bt else "-"
        lines.append(
            f"| {loss} | {n} | {d} | {_fmt(dt)} | {_fmt(bt)} | {ratio} "
            f"| {_mib(dense.get('extra_peak_bytes'))} | {_mib(block.get('extra_peak_bytes'))} "
            f"| {_mib(dense.get('xla_temp_bytes'))} | {_mib(block.get('xla_temp_bytes'))} |"
        )
    lines.append("")
    lines.append("Extra peak = peak RSS during the first run minus RSS before it (inputs excluded); "
                 "XLA temp = the compiled program's temporaries. '-' = not run "
                 "(temporaries beyond the RAM budget) or failed.")
    return "\n".join(lines) + "\n"


def _fmt(t):
    return "-" if t is None else f"{t:.3f}"


def _pairs(rows):
    out = {}
    for r in rows:
        out.setdefault((r["loss"], r["n"], r["d"]), {})[r["impl"]] = r
    return sorted(out.items())


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_d = statistics.mode(r["d"] for r in rows if r["loss"] == "clip")
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for impl, style in (("dense", "o-"), ("blockwise", "s-")):
        sweep = sorted(
            (r["n"], r) for r in rows
            if r["impl"] == impl and r["loss"] == "clip" and r["d"] == sweep_d and "error" not in r
        )
        timed = [(n, r["time_s"]) for n, r in sweep if "time_s" in r]
        ax_t.plot(*zip(*timed), style, label=impl)
        # Where a case was too large to run, plot XLA's count of its temporaries instead.
        mem = [(n, r.get("extra_peak_bytes", r["xla_temp_bytes"]) / 2**20) for n, r in sweep]
        ax_m.plot(*zip(*mem), style, label=impl)
    for ax, label in ((ax_t, "forward+backward time (s)"), (ax_m, "extra peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size N")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}, d = {sweep_d}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="small sizes, a minute in all")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--worker", nargs=5, metavar=("IMPL", "LOSS", "N", "D", "REPEATS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        impl, loss, n, d, repeats = args.worker
        print(json.dumps(run_worker(impl, loss, int(n), int(d), int(repeats))))
        return

    from tqdm import tqdm

    cases = FAST_CASES if args.fast else FULL_CASES
    jobs = [(impl, *case) for case in cases for impl in IMPLS]
    rows = []
    for impl, loss, n, d in tqdm(jobs, desc="loss_memory", unit="run"):
        repeats = args.repeats or (3 if args.fast or n >= 16384 else 5)
        rows.append(measure(impl, loss, n, d, repeats))
        tqdm.write(json.dumps({k: v for k, v in rows[-1].items() if k != "times_s"}))

    import jax

    stem = "loss_memory_fast" if args.fast else "loss_memory"
    meta = {
        "command": "python experiments/loss_memory.py" + (" --fast" if args.fast else ""),
        "device": f"{jax.devices()[0].device_kind} x{os.cpu_count()} cores, jax {jax.__version__}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    table = to_markdown(rows, meta)
    (args.out / f"{stem}.md").write_text(table)
    plot(rows, args.out / f"{stem}.png", f"CLIP loss, dense vs blockwise ({meta['device']})")
    print(table)
    print(f"wrote {args.out / stem}.{{json,md,png}}")


if __name__ == "__main__":
    main()
