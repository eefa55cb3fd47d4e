"""FLIP patch dropout: the CLIP train step's time at 0%, 50% and 75% of the patches dropped.

    python experiments/patch_dropout.py           # ViT-Ti/4 (6 blocks) on 32x32 images, batch 64
    python experiments/patch_dropout.py --fast    # 2 blocks, batch 16: seconds

The step is the trainer's own gradient computation (`train.step.loss_and_grads`: the dual
encoder's forward and backward and the CLIP loss) for the digits CLIP config with the image
tower swapped for a ViT large enough to dominate the step (64 patches + cls; the digits text
tower). Inputs are random; only the time matters. Each rate is compiled once, then timed
`--repeats` times: the median wall time, and the process's CPU time per step (all threads;
on a busy shared machine it moves less than wall time). Writes results/patch_dropout.{json,md}.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchlib  # noqa: E402

RATES = (0.0, 0.5, 0.75)


def measure(rate: float, depth: int, batch: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import flax.linen as nn

    from configs import digits_clip
    from contrastive import parallel, task as task_lib
    from contrastive.train import losses, step

    config = digits_clip.get_config()
    config.model.image_variant = "Ti/4"
    config.model.image_options = {"depth": depth, "patch_dropout": rate}
    task = task_lib.make_task(config, vocab_size=64)
    rng = np.random.default_rng(0)
    data = {"image": jnp.asarray(rng.normal(size=(batch, 32, 32, 3)), jnp.float32),
            "tokens": jnp.asarray(rng.integers(1, 60, (batch, config.data.max_len)), jnp.int32)}
    variables = nn.meta.unbox(jax.jit(lambda k: task_lib.init_variables(
        task, k, task.inputs(data)))(jax.random.key(0)))
    params = variables["params"]
    mesh = parallel.make_mesh({"data": 1}, devices=jax.devices()[:1])
    loss = losses.bind("clip", mesh)

    @jax.jit
    def grads(params, data, key):
        value, _, g, _, _ = step.loss_and_grads(task, loss, params, {}, data, key, {})
        return value, g

    start = time.perf_counter()
    jax.block_until_ready(grads(params, data, jax.random.key(1)))
    compile_s = time.perf_counter() - start
    walls, cpus = [], []
    for i in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(grads(params, data, jax.random.key(2 + i)))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"patch_dropout": rate, "tokens": 1 + max(1, round(64 * (1 - rate))),
            "step_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "times_s": walls, "first_call_s": compile_s}


def to_markdown(rows, meta) -> str:
    base = rows[0]
    lines = [f"FLIP patch dropout: CLIP gradient step (forward + backward + loss) of a ViT-Ti/4 "
             f"with {meta['depth']} blocks on 32x32 images, batch {meta['batch']}, "
             f"{meta['device']}; median of {meta['repeats']} steps. Command: "
             f"`{meta['command']}`.", "",
             "| patches dropped | image tokens | step time (s) | speed-up | CPU time / step (s) "
             "| CPU speed-up |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['patch_dropout']:.0%} | {r['tokens']} | {r['step_s']:.3f} | "
                     f"{base['step_s'] / r['step_s']:.2f}x | {r['cpu_s']:.3f} | "
                     f"{base['cpu_s'] / r['cpu_s']:.2f}x |")
    return "\n".join(lines) + "\n"


def main():
    parser = benchlib.arg_parser(__doc__, worker_fields=1)
    args = parser.parse_args()
    depth, batch = (2, 16) if args.fast else (6, 64)
    repeats = args.repeats or (2 if args.fast else 5)
    rows = [measure(rate, depth, batch, repeats) for rate in RATES]
    meta = {"device": benchlib.device_description(), "depth": depth, "batch": batch,
            "repeats": repeats,
            "command": "python experiments/patch_dropout.py" + (" --fast" if args.fast else "")}
    stem = "patch_dropout_fast" if args.fast else "patch_dropout"
    benchlib.write_results(args.out, stem, meta, rows, to_markdown(rows, meta))


if __name__ == "__main__":
    main()
