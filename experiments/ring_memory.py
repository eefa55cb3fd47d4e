"""Ring-sharded vs all-gather vs single-device contrastive loss: per-device memory and time.

    python experiments/ring_memory.py           # N = 8k .. 64k on 8 fake CPU devices (~5 min idle)
    python experiments/ring_memory.py --fast    # N = 1k .. 4k, seconds

Three ways to take the CLIP loss (forward + backward, gradients of x, y and scale) of a global
batch of N pairs of d-dim embeddings:
  - single:     the blockwise loss on one device;
  - ring:       the blockwise loss sharded over 8 devices, y blocks travelling around a ring
                (`contrastive.parallel.ring.sharded_loss`);
  - all-gather: OpenCLIP's design (`gather_with_grad`), written here as the baseline: every
                device all-gathers both modalities and takes dense (N/P x N) logits of its rows.
Per-device memory is XLA's count for the compiled program (arguments + outputs + temporaries,
one device's share); the measured peak RSS of the whole process (all 8 fake devices) is given
too. Every figure comes from its own process. Results: experiments/results/ring_memory.*.
"""
from __future__ import annotations

import json

from tqdm import tqdm

import benchlib

DEVICES = 8
D = 128
# Runs whose whole-process memory (XLA's per-device total x devices) would not fit are compiled
# only: their memory figures are XLA's, and they have no time.
MAX_RUNNABLE_BYTES = 14 * 2**30
IMPLS = ("single", "ring", "all-gather")


def allgather_clip_loss(x, y, scale, axis_name):
    """OpenCLIP's ClipLoss with gather_with_grad, inside shard_map: each device gathers all
    embeddings (autodiff turns the gather's transpose into a reduce-scatter) and takes the
    cross-entropy of its own rows against every column."""
    import jax
    import jax.numpy as jnp

    all_x = jax.lax.all_gather(x, axis_name, tiled=True)
    all_y = jax.lax.all_gather(y, axis_name, tiled=True)
    labels = jnp.arange(x.shape[0]) + jax.lax.axis_index(axis_name) * x.shape[0]

    def cross_entropy(logits):
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(x.shape[0]), labels])

    local = 0.5 * (cross_entropy(scale * x @ all_y.T) + cross_entropy(scale * y @ all_x.T))
    return jax.lax.pmean(local, axis_name)


def worker(impl: str, n: int, d: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    from contrastive.losses import clip_loss
    from contrastive.parallel import make_mesh
    from contrastive.parallel.ring import sharded_loss

    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    x, y = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x, y))
    scale = jnp.float32(10.0)
    if impl == "single":
        loss, args = clip_loss, (jnp.asarray(x), jnp.asarray(y), scale)
    else:
        mesh = make_mesh({"data": DEVICES})
        rows = NamedSharding(mesh, PartitionSpec("data"))
        args = (jax.device_put(x, rows), jax.device_put(y, rows), scale)
        if impl == "ring":
            loss = sharded_loss(clip_loss, mesh, batch_axes=("data",))
        else:
            loss = jax.shard_map(
                lambda x, y, s: allgather_clip_loss(x, y, s, "data"), mesh=mesh,
                in_specs=(PartitionSpec("data"),) * 2 + (PartitionSpec(),),
                out_specs=PartitionSpec(),
            )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2))).lower(*args).compile()
    row = {"impl": impl, "n": n, "d": d, **benchlib.memory_analysis(compiled)}
    devices = 1 if impl == "single" else DEVICES
    if row["total_bytes"] * devices > MAX_RUNNABLE_BYTES:
        return row | {"skipped": "would not fit in this machine's RAM"}
    return row | benchlib.first_run_peak_and_times(compiled, args, repeats)


def to_markdown(rows, meta) -> str:
    lines = [
        f"CLIP loss forward+backward, global batch N, d = {D}, float32, {meta['device']}; ring "
        f"and all-gather on {DEVICES} fake CPU devices sharing those cores. "
        f"Command: `{meta['command']}`.",
        "",
        "| N | impl | per-device memory, XLA (MiB) | vs single | process extra peak RSS (MiB) "
        "| time (s) | vs single |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    single = {r["n"]: r for r in rows if r["impl"] == "single"}
    for r in sorted(rows, key=lambda r: (r["n"], IMPLS.index(r["impl"]))):
        base = single.get(r["n"], {})
        mem_ratio = (f"{r['total_bytes'] / base['total_bytes']:.3f}"
                     if "total_bytes" in r and "total_bytes" in base else "-")
        time_ratio = (f"{r['time_s'] / base['time_s']:.2f}"
                      if "time_s" in r and "time_s" in base else "-")
        lines.append(
            f"| {r['n']} | {r['impl']} | {benchlib.mib(r.get('total_bytes'))} | {mem_ratio} "
            f"| {benchlib.mib(r.get('extra_peak_bytes'))} | {benchlib.seconds(r.get('time_s'))} "
            f"| {time_ratio} |"
        )
    lines += ["", "Per-device memory: arguments + outputs + temporaries of one device's program "
              "(XLA memory analysis). Process extra peak: measured RSS growth of the whole "
              "process (all devices) in the first run. '-': not run (would not fit in RAM) or "
              "failed."]
    return "\n".join(lines) + "\n"


def plot(rows, path):
    import matplotlib.pyplot as plt

    fig, (ax_m, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    for impl, style in zip(IMPLS, ("o-", "s-", "^-")):
        pts = sorted((r["n"], r) for r in rows if r["impl"] == impl and "total_bytes" in r)
        ax_m.plot([n for n, _ in pts], [r["total_bytes"] / 2**20 for _, r in pts], style, label=impl)
        timed = [(n, r["time_s"]) for n, r in pts if "time_s" in r]
        if timed:
            ax_t.plot(*zip(*timed), style, label=impl)
    benchlib.log_log_axes(
        [(ax_m, "per-device memory (MiB, XLA)"), (ax_t, "forward+backward time (s)")],
        "global batch N",
    )
    fig.suptitle(f"CLIP loss on {DEVICES} devices: ring vs all-gather vs one device (d = {D})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = benchlib.arg_parser(__doc__, worker_fields=4)
    args = parser.parse_args()
    if args.worker:
        impl, n, d, repeats = args.worker
        print(json.dumps(worker(impl, int(n), int(d), int(repeats))))
        return

    sizes = (1024, 2048, 4096) if args.fast else (8192, 16384, 32768, 65536)
    env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}"}
    rows = []
    for n, impl in tqdm([(n, i) for n in sizes for i in IMPLS], desc="ring_memory"):
        repeats = args.repeats or (1 if n >= 32768 else 3)
        row = benchlib.run_in_subprocess(__file__, [impl, n, D, repeats], env)
        rows.append({"impl": impl, "n": n, "d": D} | row)
        tqdm.write(json.dumps({k: v for k, v in rows[-1].items() if k != "times_s"}))

    meta = {"command": "python experiments/ring_memory.py" + (" --fast" if args.fast else ""),
            "device": benchlib.device_description()}
    benchlib.write_results(args.out, "ring_memory_fast" if args.fast else "ring_memory", meta,
                           rows, to_markdown(rows, meta), lambda p: plot(rows, p))


if __name__ == "__main__":
    main()
