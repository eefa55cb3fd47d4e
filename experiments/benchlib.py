"""What the benchmark scripts share: one process per figure, peak memory, timing, result files."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def resident_bytes() -> dict:
    """{"VmRSS": current, "VmHWM": peak since the last `reset_peak`} of this process, in bytes."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def reset_peak() -> int:
    """Resets the kernel's peak-RSS counter to the current RSS (Linux); returns that RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return resident_bytes()["VmRSS"]


def first_run_peak_and_times(fn, args, repeats: int) -> dict:
    """Extra peak RSS of the first call (later calls reuse buffers the allocator kept), then the
    median wall time of `repeats` more calls. `fn` is compiled; each call blocks until done."""
    import jax

    before = reset_peak()
    jax.block_until_ready(fn(*args))
    extra_peak = resident_bytes()["VmHWM"] - before
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return {"extra_peak_bytes": extra_peak, "time_s": statistics.median(times), "times_s": times}


def memory_analysis(compiled) -> dict:
    """XLA's per-device byte counts for a compiled program."""
    m = compiled.memory_analysis()
    out = {
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "temp_bytes": int(m.temp_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
    }
    out["total_bytes"] = out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"] - out[
        "alias_bytes"
    ]
    return out


def run_in_subprocess(script: str, worker_args, env_extra=None, timeout=3600) -> dict:
    """Runs `script --worker ARGS...` in a fresh process; returns the JSON on its last line
    (or {"error": stderr tail} when it failed)."""
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"), **(env_extra or {}))
    cmd = [sys.executable, script, "--worker", *map(str, worker_args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def arg_parser(doc: str, worker_fields: int):
    """The benchmarks' common flags: --fast, --repeats, --out, and the hidden --worker ARGS."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="small sizes, seconds in all")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--worker", nargs=worker_fields, help=argparse.SUPPRESS)
    return parser


def log_log_axes(axes_and_labels, xlabel: str) -> None:
    """Log-log axes (base 2 along N), grid and legend for each (axis, y label) pair."""
    for ax, label in axes_and_labels:
        ax.set(yscale="log", xlabel=xlabel, ylabel=label)
        ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()


def device_description() -> str:
    import jax

    return f"{jax.devices()[0].device_kind}, {os.cpu_count()} cores, jax {jax.__version__}"


def write_results(out_dir: Path, stem: str, meta: dict, rows: list, table: str, plot=None):
    """Writes STEM.json (meta + rows), STEM.md (the table) and, given `plot(path)`, STEM.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out_dir / f"{stem}.md").write_text(table)
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        plot(out_dir / f"{stem}.png")
    print(table)
    print(f"wrote {out_dir / stem}.{{json,md{',png' if plot else ''}}}")


def mib(b) -> str:
    return "-" if b is None else f"{b / 2**20:,.1f}"


def seconds(t) -> str:
    return "-" if t is None else f"{t:.3f}"
