"""Do the Pallas loss kernels compile for a TPU (Mosaic), and up to which N x d?

    python experiments/pallas_tpu_compile.py [--topology=v5e:2x2] [--dtype=bfloat16]

Compiles (never runs) forward + backward of every kernel (`pallas.pairwise_stats` with all
four statistics, backend "tpu") for one chip of a TPU topology on this host (libtpu, no TPU),
over a grid of N x d. On TPU the other modality is one whole VMEM block, so some N d stops
fitting the chip's VMEM; the table shows where, with the compiler's first error line.
Results: experiments/results/pallas_tpu_compile.{json,md}.
"""
from __future__ import annotations

import argparse
import os
import time

import benchlib

GRID = [(1024, 128), (4096, 256), (8192, 512), (16384, 512), (32768, 512), (65536, 512),
        (65536, 1024)]


def compile_one(n: int, d: int, dtype, device) -> dict:
    import jax
    import jax.numpy as jnp
    from jax.sharding import SingleDeviceSharding

    from contrastive.losses import pallas
    from contrastive.losses.reductions import Reductions, pair_nll

    terms = Reductions(row_lse=True, col_lse=True, row_sum=pair_nll, col_sum=pair_nll)

    def loss(x, y, s, b):
        st = pallas.pairwise_stats(x, y, s, b, terms, interpret=False, backend="tpu")
        return sum(jnp.mean(v) for v in st)

    on_chip = SingleDeviceSharding(device)
    x = jax.ShapeDtypeStruct((n, d), dtype, sharding=on_chip)
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=on_chip)
    start = time.perf_counter()
    try:  # Pallas reads the chip's VMEM size etc. from the default device: make it the TPU's
        with jax.default_device(device):
            compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3))).lower(
                x, x, scalar, scalar).compile()
    except Exception as error:  # Mosaic's or XLA's refusal, kept as the result
        lines = [line for line in str(error).splitlines() if line.strip()]
        return {"n": n, "d": d, "compiles": False, "error": " / ".join(lines[:2])[:400],
                "compile_s": round(time.perf_counter() - start, 1)}
    return {"n": n, "d": d, "compiles": True, **benchlib.memory_analysis(compiled),
            "compile_s": round(time.perf_counter() - start, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topology", default="v5e:2x2")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--out", default=benchlib.RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    import jax
    import jax.numpy as jnp
    from jax.experimental import topologies

    device = topologies.get_topology_desc(topology_name=args.topology, platform="tpu").devices[0]
    rows = []
    for n, d in GRID:
        rows.append(compile_one(n, d, jnp.dtype(args.dtype), device))
        print(rows[-1], flush=True)
    lines = [f"Pallas loss kernels (forward + backward, all four statistics) compiled for one "
             f"{device.device_kind} chip of `{args.topology}`, {args.dtype} inputs, on a host "
             f"without TPUs (jax {jax.__version__}). Command: "
             f"`python experiments/pallas_tpu_compile.py --topology={args.topology} "
             f"--dtype={args.dtype}`.", "",
             "| N | d | compiles | HBM per chip (MiB) | compile (s) | compiler's error |",
             "|---:|---:|---|---:|---:|---|"]
    for r in rows:
        error = r.get("error", "").replace("|", "/")
        lines.append(f"| {r['n']} | {r['d']} | {'yes' if r['compiles'] else 'no'} "
                     f"| {benchlib.mib(r.get('total_bytes'))} | {r['compile_s']} | {error} |")
    meta = {"topology": args.topology, "dtype": args.dtype, "jax": jax.__version__}
    from pathlib import Path

    benchlib.write_results(Path(args.out), "pallas_tpu_compile", meta, rows, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
