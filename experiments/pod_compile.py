"""Ahead-of-time compile the train step for a TPU pod that is not here: per-chip memory, FLOPs.

    python experiments/pod_compile.py --config=configs/clip.py:vit_b16,batch=65536 \
        --topology=v5e:8x8 --mesh='{"fsdp": -1}' [--search] [--set model.remat=True ...]
    python experiments/pod_compile.py ... --loss_only=ring      # the loss alone (or allgather)

libtpu (`pip install -e ".[tpu]"`) compiles for a topology by name on any host, no TPU needed
(`jax.experimental.topologies`). GPUs likewise with the CUDA plugin (`pip install -e ".[cuda]"`):
`--topology=h100:1x1x8` (or h200) builds 8 GPUs of one host from the device description in
experiments/gpu_specs/, with the plugin's driver check skipped and autotuning off (both need a
GPU). The step compiled is the one `contrastive.main` runs
(`contrastive.train.loop.build_train_step`, lowered with abstract state and batch). Each run
adds (or replaces) its row in experiments/results/pod_compile.{json,md}: per-chip arguments,
temporaries and peak HBM (XLA's memory analysis), FLOPs per chip per step (XLA's cost
analysis), the roofline step time FLOPs / peak bf16 FLOP/s, and the compile time. `--search`
bisects the largest per-chip batch whose peak fits the chip's HBM, a few compiles at most.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

import benchlib

# HBM per chip (GiB), from Google Cloud's TPU pages; the peak FLOP/s per chip come from the
# trainer's table (contrastive.train.observe.TPU_PEAK_FLOPS, by the topology's device kind).
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
# GPUs, compiled without one: "h100:1x1x8" is one host of 8 (the CUDA plugin, jax[cuda12],
# builds the topology from a device description; its HBM is the description's).
GPU_SPECS = {"h100": "h100.txtpb", "h200": "h200.txtpb"}
SPEC_DIR = Path(__file__).resolve().parent / "gpu_specs"


def gpu_spec(name: str) -> str | None:
    """The device description text of a GPU topology name ("h100:1x1x8"), else None."""
    kind = name.split(":")[0]
    return (SPEC_DIR / GPU_SPECS[kind]).read_text() if kind in GPU_SPECS else None


def hbm_gib(name: str) -> float:
    spec = gpu_spec(name)
    if spec is None:
        return HBM_GIB[name.split(":")[0]]
    return round(int(re.search(r"device_memory_size: (\d+)", spec)[1]) / 2**30, 1)


def load_config(spec: str, overrides: list[str]):
    """configs/X.py[:arg] -> ConfigDict, then FIELD=VALUE overrides (Python literals)."""
    path, _, arg = spec.partition(":")
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))  # configs import `configs.common`
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("cfg", path))
    module.__spec__.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
    for item in overrides:
        field, _, value = item.partition("=")
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass  # a bare string
        node = config
        *parents, leaf = field.split(".")
        for name in parents:
            node = node[name]
        node[leaf] = value
    return config


def topology_devices(name: str):
    """The devices of a TPU topology by name, e.g. "v5e:8x8" (64 chips), "v4:4x4x4", or of
    GPUs: "h100:1x1x8" (hosts x ... x GPUs per host, as jax's CUDA topologies count)."""
    from jax.experimental import topologies

    spec = gpu_spec(name)
    if spec is not None:
        kind, _, shape = name.partition(":")
        return topologies.get_topology_desc(topology_name=kind, platform="cuda",
                                            target_config=spec, topology=shape).devices

    # v4 and v5p chips have two TensorCores: as in training, one device per chip (megacore).
    megacore = {"chip_config_name": "megacore"} if name.split(":")[0] in ("v4", "v5p") else {}
    return topologies.get_topology_desc(topology_name=name, platform="tpu", **megacore).devices


def abstract_example(config) -> dict:
    """One example's ShapeDtypeStructs as the input pipeline produces it (no data read)."""
    import jax
    import jax.numpy as jnp

    if config.data.image_size:
        shape = (config.data.image_size,) * 2 + (3,)
    else:  # stored size (digits: built locally, no download)
        from contrastive.data import from_config as data_lib

        shape = data_lib.load_source(config, config.data.train_split)[0]["image"].shape
        shape = (*shape, 1) if len(shape) == 2 else shape
    image = jax.ShapeDtypeStruct(tuple(shape), jnp.float32)
    fields = {"label": jax.ShapeDtypeStruct((), jnp.int32),
              "mask": jax.ShapeDtypeStruct((), jnp.bool_),
              "index": jax.ShapeDtypeStruct((), jnp.int32)}
    if config.model.kind == "image_text":
        tokens = jax.ShapeDtypeStruct((config.data.max_len,), jnp.int32)
        return {"image": image, "tokens": tokens, **fields}
    return {"view1": image, "view2": image, **fields}


def lower_step(config, mesh):
    """The loop's jitted train step lowered for abstract state and batch on `mesh`."""
    import jax

    from contrastive import parallel
    from contrastive.train import loop
    from contrastive.train import state as state_lib

    example = abstract_example(config)
    vocab = config.model.text_options.get("vocab_size") if config.model.kind == "image_text" else None
    _, init_fn, shardings, train_step = loop.build_train_step(config, mesh, example, vocab, 0)
    state = state_lib.abstract_state(init_fn, shardings)
    rows = parallel.batch_sharding(mesh)
    batch = {k: jax.ShapeDtypeStruct((config.batch_size, *v.shape), v.dtype, sharding=rows)
             for k, v in example.items()}
    return train_step.lower(state, batch)


def step_flops(config, mesh) -> float:
    """FLOPs per chip per step. XLA's cost analysis counts a while loop's body once, so the
    count comes from the same step with the towers unrolled (scan, head_chunks off: the same
    arithmetic), lowered but not compiled, by the host's HLO cost analysis of the global
    (unpartitioned) program, divided by the chips.
    The loss engine's tile loops are still counted once: a few N x N x d matmuls, small here."""
    unrolled = config.copy_and_resolve_references()
    for options in ("image_options", "text_options"):
        unrolled.model[options] = {**dict(unrolled.model[options]), "scan": False,
                                   "head_chunks": 1}
    import jax
    from jax._src.lib import xla_client  # the compile-only TPU client has no cost analysis

    hlo = lower_step(unrolled, mesh).compiler_ir("hlo").as_hlo_module()
    cost = xla_client._xla.hlo_module_cost_analysis(jax.devices("cpu")[0].client, hlo)
    return float(cost["flops"]) / mesh.size


def compile_loss(config, mesh, impl: str):
    """Forward + backward of the loss alone at the config's global batch and embedding width:
    the project's ring ("ring") or OpenCLIP-style all-gather of dense logits ("allgather")."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from contrastive import parallel
    from contrastive.train import losses

    axes = parallel.BATCH_AXES
    rows = NamedSharding(mesh, PartitionSpec(axes))
    emb = jax.ShapeDtypeStruct((config.batch_size, config.model.embed_dim), jnp.float32,
                               sharding=rows)
    scale = jax.ShapeDtypeStruct((), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    if impl == "ring":
        ring = losses.bind(config.loss, mesh, config.loss_block_size, config.loss_options)
        loss = lambda x, y, s: ring(x, y, s, jnp.float32(0.0), None, {})[0]
    elif impl == "allgather" and config.loss == "clip":
        from ring_memory import allgather_clip_loss

        loss = jax.shard_map(lambda x, y, s: allgather_clip_loss(x, y, s, axes), mesh=mesh,
                             in_specs=(PartitionSpec(axes),) * 2 + (PartitionSpec(),),
                             out_specs=PartitionSpec())
    else:
        raise ValueError(f"--loss_only: 'ring', or 'allgather' for loss clip; got {impl!r}")
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2))).lower(emb, emb, scale)


def measure(config, mesh, loss_only: str | None, flops: bool = True) -> dict:
    """Compile once: XLA's per-chip memory, FLOPs per chip (train step only), compile time.
    hbm_bytes = arguments + outputs + temporaries - aliased (donated) bytes; a program the TPU
    compiler refuses for lack of HBM gets its temporaries from the error message."""
    # With micro-batches the step loops over them, which the count would see once: no figure.
    counted = flops and not loss_only and config.num_microbatches == 1
    row = {"flops": step_flops(config, mesh) if counted else None}
    start = time.perf_counter()  # lowering and compiling the step itself
    try:
        lowered = compile_loss(config, mesh, loss_only) if loss_only else lower_step(config, mesh)
        compiled = lowered.compile()
    except Exception as error:  # TPU's compiler refuses a program whose temporaries exceed HBM
        found = re.search(r"HLO temporaries \(([\d.]+)([KMGT])\)", str(error))
        if not found:
            raise
        temp = int(float(found[1]) * 2 ** (10 * "KMGT".index(found[2]) + 10))
        return row | {"argument_bytes": None, "temp_bytes": temp, "hbm_bytes": temp,
                      "xla_peak_bytes": None, "compile_s": round(time.perf_counter() - start, 1),
                      "error": str(error).splitlines()[0][:300]}
    row |= benchlib.memory_analysis(compiled)
    row["hbm_bytes"] = row.pop("total_bytes")
    row["xla_peak_bytes"] = int(getattr(compiled.memory_analysis(), "peak_memory_in_bytes", 0))
    row["compile_s"] = round(time.perf_counter() - start, 1)
    return row


def search(config, mesh, loss_only, hbm: float, first: dict, compiles: int) -> int:
    """Largest per-chip batch (a multiple of 8) whose peak fits `hbm`, by doubling then
    bisecting from the measured point `first`; at most `compiles` more compiles, so with no
    failure among them the answer is a lower bound."""
    chips = mesh.size
    per_chip = config.batch_size // chips
    lo, hi = (per_chip, None) if first["hbm_bytes"] <= hbm else (0, per_chip)
    for _ in range(compiles):
        trial = lo * 2 if hi is None else (lo + hi) // 2 // 8 * 8
        if trial <= lo or (hi is not None and trial >= hi):
            break
        config.batch_size = trial * chips
        ok = measure(config, mesh, loss_only, flops=False)["hbm_bytes"] <= hbm
        print(f"per-chip batch {trial}: {'fits' if ok else 'does not fit'}", flush=True)
        lo, hi = (trial, hi) if ok else (lo, trial)
    return lo


def to_markdown(rows: list, meta: dict) -> str:
    lines = [
        "Ahead-of-time compiled train steps (or the loss alone) for TPU topologies and GPU "
        f"hosts, on a host without either ({meta['host']}). Per-chip figures from XLA's memory and cost analysis; "
        "roofline = FLOPs per chip / peak bf16 FLOP/s per chip. Command for each row: "
        "`python experiments/pod_compile.py` with the row's config, topology, mesh and sets.",
        "",
        "| tag | config | what | topology | chip HBM (GiB), peak bf16 TFLOP/s | mesh | global batch "
        "| per chip | arguments (GiB) | temporaries (GiB) | HBM (GiB) | XLA peak (GiB) | fits | TFLOPs/chip/step "
        "| roofline step (s) | compile (s) | largest per-chip batch that fits |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    gib = lambda b: "-" if b is None else f"{b / 2**30:.2f}"
    tflops = lambda f: "-" if f is None else f"{f / 1e12:.1f}"
    peak = lambda r: (f"> {gib(r['hbm_bytes'])} (refused: out of HBM)" if r.get("error")
                      else gib(r["hbm_bytes"]))
    step_s = lambda t: "-" if t is None else f"{t:.3f}"
    for r in rows:
        lines.append(
            f"| {r.get('tag', '')} | `{r['config']}`{' ' + ' '.join(r['sets']) if r['sets'] else ''} "
            f"| {r['what']} "
            f"| {r['topology']} | {r['hbm_gib']}, {r['peak_flops'] / 1e12:.0f} | `{r['mesh']}` "
            f"| {r['batch']:,} | {r['per_chip']:,} | {gib(r['argument_bytes'])} "
            f"| {gib(r['temp_bytes'])} | {peak(r)} | {gib(r.get('xla_peak_bytes'))} | {'yes' if r['fits'] else 'no'} "
            f"| {tflops(r['flops'])} | {step_s(r['roofline_s'])} | {r['compile_s']:.0f} "
            f"| {r.get('max_per_chip') or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="configs/X.py[:arg]")
    parser.add_argument("--topology", default="v5e:4x4", help="TPU topology, e.g. v5e:8x8")
    parser.add_argument("--mesh", default=None, help='e.g. \'{"fsdp": -1}\' (default: config)')
    parser.add_argument("--set", action="append", default=[], help="config FIELD=VALUE")
    parser.add_argument("--loss_only", default=None, help="ring | allgather: the loss alone")
    parser.add_argument("--search", action="store_true", help="largest per-chip batch that fits")
    parser.add_argument("--search_compiles", type=int, default=4)
    parser.add_argument("--tag", default="", help="a label kept with the row (e.g. before)")
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS)
    args = parser.parse_args(argv)
    # Compiling needs no TPU: let several compiles (and other users of libtpu) run at once.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    if gpu_spec(args.topology) is not None:
        # The CUDA plugin checks the driver's version at start; a host without a GPU has none,
        # and compiling for a described device needs none. Autotuning would need the device,
        # and without it XLA's Triton GEMM tiler refuses some of the towers' dots ("Couldn't
        # find output tile sizes"), so GEMMs go to cuBLAS, as XLA falls back to when tuning.
        os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_autotune_level=0"
                                   " --xla_gpu_enable_triton_gemm=false")
    import jax

    from contrastive import parallel

    config = load_config(args.config, args.set)
    if config.loss_block_size is None:  # the engine picks by jax.default_backend(): here "cpu"
        from contrastive.losses import engine

        config.loss_block_size = engine.ACCELERATOR_BLOCK_SIZE
    mesh_axes = json.loads(args.mesh) if args.mesh else dict(config.mesh)
    devices = topology_devices(args.topology)
    mesh = parallel.make_mesh(mesh_axes, devices)
    from contrastive.train import observe

    chip_hbm_gib = hbm_gib(args.topology)
    peak_flops = observe.peak_flops(devices[0].device_kind)
    if peak_flops is None:
        raise ValueError(f"no peak FLOP/s for device kind {devices[0].device_kind!r} in "
                         "contrastive.train.observe's tables")
    hbm = chip_hbm_gib * 2**30
    batch = config.batch_size
    row = measure(config, mesh, args.loss_only)
    row |= {
        "tag": args.tag, "config": args.config, "sets": args.set, "topology": args.topology,
        "what": f"loss only, {args.loss_only}" if args.loss_only else "train step",
        "chips": len(devices), "hbm_gib": chip_hbm_gib, "peak_flops": peak_flops,
        "mesh": json.dumps(mesh_axes), "batch": batch, "per_chip": batch // len(devices),
        "fits": row["hbm_bytes"] <= hbm,
        "roofline_s": row["flops"] / peak_flops if row["flops"] is not None else None,
    }
    if args.search:
        row["max_per_chip"] = search(config, mesh, args.loss_only, hbm, row, args.search_compiles)
    print(json.dumps(row, indent=1), flush=True)

    path = args.out / "pod_compile.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    key = lambda r: (r.get("tag", ""), r["config"], r["sets"], r["topology"], r["what"], r["mesh"], r["batch"])
    rows = [r for r in rows if key(r) != key(row)] + [row]
    meta = {"host": benchlib.device_description().replace(jax.devices()[0].device_kind, "cpu"),
            "jax": jax.__version__}
    benchlib.write_results(args.out, "pod_compile", meta, rows, to_markdown(rows, meta))


if __name__ == "__main__":
    main()
