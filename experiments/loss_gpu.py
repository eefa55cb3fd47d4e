"""Fused Pallas kernels vs the XLA engine vs dense: the loss's forward+backward on one accelerator.

    python experiments/loss_gpu.py                  # GPU: N = 8k .. 256k, d = 512, 1024, bf16
    python experiments/loss_gpu.py --tune           # first pick the Pallas blocks per d
    python experiments/loss_gpu.py --ns 65536 --ds 1024 --append    # one more point, merged
    python experiments/loss_gpu.py --fast           # CPU smoke run (Pallas interpreted), seconds

The whole sweep is ~40 processes of seconds to a minute each; under a per-command time limit run
it in parts (--ds 512, then --ds 1024 --max_fit_n 0 --append; --loss siglip --ns 65536 --append).

For each (impl, N, d) a fresh process compiles `jit(value_and_grad(loss))` (gradients of x, y,
scale and, for SigLIP, bias) ahead of time and reports
  - time_s: median of `repeats` runs after one warm-up run, each ended by block_until_ready;
  - peak_bytes: the device's peak_bytes_in_use after the runs (inputs included; a fresh process
    per figure, so nothing else is counted); where the device keeps no statistics (CPU), XLA's
    count of the compiled program's arguments + outputs + temporaries instead;
  - TFLOP/s by the model 8 N^2 d FLOPs per step: four N x N x d matmuls (2 N^2 d each), the
    forward one plus the backward's recompute, dS Y and dS^T X (the issue's yardstick). What each
    implementation executes differs: dense 6 N^2 d (it keeps S), the XLA engine 8, the Pallas
    CLIP 12 (a second forward pass for the columns, and two recomputations of S in the backward,
    one per gradient, instead of atomics) and SigLIP 10; `executed_tflops` counts those;
  - fraction of peak: model TFLOP/s / --peak_tflops (default 989: one H100 SXM's dense bf16
    tensor-core peak, without sparsity; an H100 PCIe's is 756).
Then, at d = 512, N doubles past the sweep until a run fails (out of memory) or reaches
--max_fit_n (default 2^20, the million-row target): the largest N that fits, per implementation.
Dense runs whose XLA memory count exceeds the device's are reported as not fitting, unrun.
Results: experiments/results/loss_gpu.{json,md,png} (--fast: loss_gpu_fast.*, not committed).
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time

import benchlib
from loss_gpu_report import IMPLS, fits, largest_fitting, plot, to_markdown

FULL = dict(ns=[2**k for k in range(13, 19)], ds=[512, 1024], dtype="bfloat16", fit_d=512)
FAST = dict(ns=[64, 128], ds=[32], dtype="bfloat16", fit_d=32)
# N^2 d multiples each implementation executes per step (see the docstring).
EXECUTED = {("dense", "clip"): 6, ("dense", "siglip"): 6, ("xla", "clip"): 8,
            ("xla", "siglip"): 8, ("pallas", "clip"): 12, ("pallas", "siglip"): 10}
# Candidates for --tune (untried on hardware when written): "" is the GPU defaults (see
# contrastive/losses/pallas/blocks.py); the others trade the backward's (grad_rows x out) float32
# accumulator against matmul size and recomputation.
TUNE_CANDIDATES = [
    "",
    "rows=128,cols=128,depth=64,grad_rows=32,grad_cols=64,num_warps=8,num_stages=3",
    "rows=128,cols=64,depth=64,grad_rows=16,grad_cols=64,num_warps=4,num_stages=3",
    "rows=64,cols=128,depth=128,grad_rows=32,grad_cols=128,num_warps=8,num_stages=2",
    "rows=128,cols=128,depth=64,grad_rows=64,grad_cols=64,out=256,num_warps=8,num_stages=3",
    "rows=128,cols=128,depth=64,grad_rows=128,grad_cols=64,out=128,num_warps=8,num_stages=2",
]


def parse_blocks(spec: str):
    """"rows=64,cols=64,out=256" -> pallas.Blocks; "" -> None (the backend's defaults)."""
    from contrastive.losses import pallas

    if not spec:
        return None
    fields = dict(kv.split("=") for kv in spec.split(","))
    return pallas.Blocks(**{k: None if v == "None" else int(v) for k, v in fields.items()}).check()


# ---------------------------------------------------------------------------------------------
# Worker: one figure, in its own process.


def worker(spec: dict) -> dict:
    import jax
    import jax.numpy as jnp

    from contrastive.losses import clip_loss, reference, siglip_loss
    from contrastive.losses.pallas import blocks as pallas_blocks

    impl, loss, n, d = spec["impl"], spec["loss"], spec["n"], spec["d"]
    backend = jax.default_backend()
    blocks = parse_blocks(spec.get("blocks", ""))
    if blocks is not None:  # the losses take Pallas blocks from this table of defaults
        pallas_blocks.DEFAULT_BLOCKS[backend] = blocks
    fitted = pallas_blocks.choose(n, d, backend=backend)

    fns = {
        ("dense", "clip"): lambda x, y, s, b: reference.clip_loss_dense(x, y, s),
        ("dense", "siglip"): reference.siglip_loss_dense,
        ("xla", "clip"): lambda x, y, s, b: clip_loss(x, y, s),
        ("xla", "siglip"): siglip_loss,
        ("pallas", "clip"): lambda x, y, s, b: clip_loss(x, y, s, impl="pallas"),
        ("pallas", "siglip"): lambda x, y, s, b: siglip_loss(x, y, s, b, impl="pallas"),
    }
    dtype = jnp.dtype(spec["dtype"])

    @jax.jit
    def embeddings(key):
        # Made on the device in the input dtype (a million rows never pass through the host, and
        # no float32 (N, d) temporary inflates the device's peak): loosely paired unit rows.
        kx, ky = jax.random.split(key)
        unit = lambda a: a * jax.lax.rsqrt(
            jnp.sum(jnp.square(a.astype(jnp.float32)), axis=1, keepdims=True)).astype(dtype)
        x = unit(jax.random.normal(kx, (n, d), dtype))
        return x, unit(x + 2 * jax.random.normal(ky, (n, d), dtype))

    args = (*embeddings(jax.random.key(0)), jnp.float32(10.0), jnp.float32(-10.0))
    jax.block_until_ready(args)
    step = jax.jit(jax.value_and_grad(fns[impl, loss], argnums=(0, 1, 2, 3)))
    start = time.perf_counter()
    try:
        compiled = step.lower(*args).compile()
    except Exception as e:  # noqa: BLE001 - any failure to build is a result, not a crash
        return {"error": f"compile: {type(e).__name__}: {str(e)[:300]}"}
    row = {"compile_s": time.perf_counter() - start, **benchlib.memory_analysis(compiled)}
    if impl == "pallas":
        row["blocks"] = dataclasses.asdict(fitted)
    device = jax.devices()[0]
    mem = device.memory_stats() or {}
    row["inputs_bytes"] = mem.get("bytes_in_use")  # the embeddings (and little else) on device
    limit = mem.get("bytes_limit")
    if limit and row["total_bytes"] > limit:
        return row | {"skipped": "XLA's memory count exceeds the device's"}

    def run():
        jax.block_until_ready(compiled(*args))

    try:
        run()  # warm-up (autotuning, allocation)
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 - out of memory is a result here
        return row | {"error": f"run: {type(e).__name__}: {str(e)[:300]}"}
    mem = device.memory_stats() or {}
    t = statistics.median(times)
    model_flops = 8 * n * n * d
    executed = EXECUTED[impl, loss] * n * n * d
    if impl == "pallas":  # out < d recomputes S d / out times in each backward kernel
        chunks = fitted.padded_d(d) // fitted.out
        executed += (2 * chunks - 2) * 2 * n * n * d
    return row | {
        "time_s": t,
        "times_s": times,
        "peak_bytes": mem.get("peak_bytes_in_use", row["total_bytes"]),
        "peak_source": "device" if "peak_bytes_in_use" in mem else "xla",
        "model_tflops": model_flops / t / 1e12,
        "executed_tflops": executed / t / 1e12,
        "device": benchlib.device_description(),
        "backend": backend,
    }


def info() -> dict:
    import jax

    return {"backend": jax.default_backend(), "device": benchlib.device_description()}


# ---------------------------------------------------------------------------------------------
# Driver.


def run_case(impl, loss, n, d, dtype, repeats, blocks, search=False) -> dict:
    spec = dict(impl=impl, loss=loss, n=n, d=d, dtype=dtype, repeats=repeats, blocks=blocks)
    try:
        out = benchlib.run_in_subprocess(__file__, [json.dumps(spec)], env_extra=_WORKER_ENV)
    except Exception as e:  # noqa: BLE001 - e.g. a timeout
        out = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    row = {"impl": impl, "loss": loss, "n": n, "d": d, "dtype": dtype, "search": search} | out
    printable = {k: v for k, v in row.items() if k not in ("times_s", "device")}
    print(json.dumps(printable), flush=True)
    return row


# On a GPU each worker may use nearly all of the device (JAX preallocates 75% by default).
_WORKER_ENV = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.95"}


def tune(args, cfg) -> dict:
    """{d: blocks spec}: the fastest Pallas CLIP step at N = --tune_n among the candidates (each
    a few seconds of compiling and running: about a minute per d on an H100)."""
    best = {}
    for d in cfg["ds"]:
        rows = [run_case("pallas", "clip", args.tune_n, d, cfg["dtype"], 3, c)
                for c in args.tune_candidates]
        timed = [(r["time_s"], c) for r, c in zip(rows, args.tune_candidates) if "time_s" in r]
        best[d] = min(timed)[1] if timed else ""
        print(f"d={d}: best blocks {best[d] or 'defaults'}", flush=True)
    return best


def main():
    parser = benchlib.arg_parser(__doc__, worker_fields=1)
    parser.add_argument("--loss", nargs="+", default=["clip"], choices=["clip", "siglip"])
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--ns", nargs="+", type=int, help="batch sizes (default 8k .. 256k)")
    parser.add_argument("--ds", nargs="+", type=int, help="embedding widths (default 512 1024)")
    parser.add_argument("--peak_tflops", type=float, default=989.0,
                        help="the device's dense bf16 peak (default: H100 SXM, 989)")
    parser.add_argument("--max_fit_n", type=int, default=None,
                        help="largest N tried by the fit search (default 2^20; 0: no search)")
    parser.add_argument("--blocks", default="", help='Pallas blocks, e.g. "rows=64,cols=64,out=256"')
    parser.add_argument("--tune", action="store_true", help="pick the Pallas blocks per d first")
    parser.add_argument("--tune_n", type=int, default=16384)
    parser.add_argument("--tune_candidates", nargs="+", default=TUNE_CANDIDATES)
    parser.add_argument("--append", action="store_true",
                        help="merge into the existing results (same case: replaced)")
    parser.add_argument("--allow_cpu", action="store_true",
                        help="run the full sizes even without an accelerator (interpreted Pallas)")
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker[0])
        print(json.dumps(info() if spec.get("info") else worker(spec)))
        return

    cfg = dict(FAST if args.fast else FULL)
    if args.fast:  # Pallas runs interpreted on CPU
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    else:  # let each worker find the accelerator (benchlib defaults workers to CPU)
        os.environ.setdefault("JAX_PLATFORMS", "")
    host = benchlib.run_in_subprocess(__file__, [json.dumps({"info": True})])
    if "error" in host:
        raise SystemExit(f"could not start JAX: {host['error']}")
    if host["backend"] == "cpu" and not (args.fast or args.allow_cpu):
        raise SystemExit("No accelerator: this benchmark is for a GPU (Pallas is interpreted on "
                         "CPU, hopelessly slowly). Use --fast for a CPU smoke run.")
    ns, ds = args.ns or cfg["ns"], args.ds or cfg["ds"]
    max_fit_n = args.max_fit_n if args.max_fit_n is not None else (
        256 if args.fast else 2**20)
    repeats = args.repeats or (2 if args.fast else 5)
    blocks = {d: args.blocks for d in ds}
    if args.tune and "pallas" in args.impls:
        blocks = tune(args, dict(cfg, ds=ds))

    rows = []
    for loss in args.loss:
        for d in ds:
            for n in ns:
                for impl in args.impls:
                    rows.append(run_case(impl, loss, n, d, cfg["dtype"], repeats, blocks[d]))
        # The largest N that fits, by doubling past the sweep at fit_d (one timed run each).
        fit_d = cfg["fit_d"] if cfg["fit_d"] in ds else ds[0]
        for impl in args.impls:
            start = largest_fitting([r for r in rows if r["loss"] == loss], impl, fit_d)
            if start is None or start < max(ns):
                continue  # it already failed within the sweep
            n = 2 * start
            while n <= max_fit_n:
                row = run_case(impl, loss, n, fit_d, cfg["dtype"], 1, blocks.get(fit_d, ""),
                               search=True)
                rows.append(row)
                if not fits(row):
                    break
                n *= 2

    stem = "loss_gpu_fast" if args.fast else "loss_gpu"
    if args.append and (args.out / f"{stem}.json").exists():
        old = json.loads((args.out / f"{stem}.json").read_text())["rows"]
        case = lambda r: (r["impl"], r["loss"], r["n"], r["d"])
        new_cases = {case(r) for r in rows}
        rows = [r for r in old if case(r) not in new_cases] + rows
    meta = {
        "command": " ".join(["python experiments/loss_gpu.py", *sys.argv[1:]]),
        "device": host["device"],
        "dtype": cfg["dtype"],
        "peak_tflops": args.peak_tflops,
        "peak_note": "H100 SXM dense bf16, no sparsity" if args.peak_tflops == 989.0
        else "given by --peak_tflops",
        "flop_model": "8 N^2 d per forward+backward step",
        "fit_d": cfg["fit_d"],
        "max_fit_n": max_fit_n,
        "blocks": {str(d): b or "defaults" for d, b in blocks.items()},
    }
    title = f"Contrastive loss fwd+bwd, {cfg['dtype']} ({host['device']})"
    benchlib.write_results(args.out, stem, meta, rows, to_markdown(rows, meta),
                           lambda p: plot(rows, p, title, args.peak_tflops))


if __name__ == "__main__":
    main()
