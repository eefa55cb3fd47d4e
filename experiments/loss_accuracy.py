"""Worst relative error of the blockwise losses against the dense float64 references.

    python experiments/loss_accuracy.py

The grid of the tests (N in {1, 2, 7, 257, 1000}, tiles that do not divide N, scale in
{1, 100, 1e4}, duplicated rows) in float64, plus float32 and bf16 inputs against the float64
reference on the same (rounded) inputs. Errors are normwise and floored at each quantity's natural
size as in tests/losses (value: scale; dx, dy: scale / N; d scale, d bias: 1).
Then every loss of the zoo (tests/losses/zoo_cases.py) in float64 over N in {1, 2, 37, 257},
tiles {automatic, 8, 64} and scales {1, 30, 100}: its worst value error and its worst error over
all its gradients. Results: experiments/results/loss_accuracy.{json,md}.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import benchlib  # noqa: E402
from contrastive.losses import clip_loss, reference, siglip_loss  # noqa: E402
from contrastive.losses.cases import CASES, NEEDS_TWO, paired, rel_err, value_and_grads  # noqa: E402

SHAPES = [(1, None), (2, 1), (7, 3), (7, None), (257, 64), (257, 100), (1000, 128), (1000, None)]
SCALES = [1.0, 100.0, 1e4]
BIAS = -10.0
QUANTITIES = ["value", "dx", "dy", "dscale", "dbias"]


def errors(loss, x, y, x64, y64, scale, block_size, stat_dtype):
    if loss == "clip":
        fn = lambda x, y, s: clip_loss(x, y, s, block_size=block_size)
        ref, scalars = reference.clip_loss_dense, (scale,)
    else:
        fn = lambda x, y, s, b: siglip_loss(x, y, s, b, block_size=block_size)
        ref, scalars = reference.siglip_loss_dense, (scale, BIAS)
    argnums = tuple(range(2 + len(scalars)))
    got = jax.value_and_grad(fn, argnums)(x, y, *(stat_dtype(s) for s in scalars))
    want = jax.value_and_grad(ref, argnums)(x64, y64, *(np.float64(s) for s in scalars))
    n = x.shape[0]
    floors = [scale, scale / n, scale / n, 1.0, 1.0]
    values = [got[0], *got[1]], [want[0], *want[1]]
    return {q: rel_err(g, w, f) for q, g, w, f in zip(QUANTITIES, *values, floors)}


def zoo_errors():
    """{loss: (cases, worst value error, worst gradient error)} in float64."""
    worst = {}
    with jax.enable_x64(True):
        for name, case in CASES.items():
            value_errors, grad_errors = [], []
            for n in (1, 2, 37, 257):
                if n == 1 and name in NEEDS_TWO:
                    continue
                for block in (None, 8, 64):
                    for scale in (1.0, 30.0, 100.0):
                        args = tuple(jnp.asarray(a) for a in case.inputs(n, n, scale))
                        got, got_grads = value_and_grads(
                            lambda *a: case.blockwise(*a, block_size=block), args, case.diff)
                        want, want_grads = value_and_grads(case.dense, args, case.diff)
                        value_errors.append(rel_err(got, want, scale / 100))
                        grad_errors += [rel_err(g, w, f) for g, w, f in
                                        zip(got_grads, want_grads, case.floors(n, scale))]
            worst[name] = (len(value_errors), max(value_errors), max(grad_errors))
    return worst


def main():
    rows = []
    with jax.enable_x64(True):
        for loss in ("clip", "siglip"):
            for n, block in SHAPES:
                for scale in SCALES:
                    for duplicate in (False, True):
                        x, y = paired(n, n, duplicate=duplicate)
                        rows.append({"dtype": "float64", "loss": loss, "n": n, "block": block,
                                     "scale": scale, "duplicate": duplicate,
                                     **errors(loss, x, y, x, y, scale, block, np.float64)})
            for dtype, name in ((jnp.float32, "float32"), (jnp.bfloat16, "bfloat16")):
                for scale in SCALES:
                    x, y = paired(1, 257, d=64)
                    xl, yl = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
                    x64, y64 = np.asarray(xl, np.float64), np.asarray(yl, np.float64)
                    rows.append({"dtype": name, "loss": loss, "n": 257, "block": 64,
                                 "scale": scale, "duplicate": False,
                                 **errors(loss, xl, yl, x64, y64, scale, 64, np.float32)})

    lines = ["Worst relative error vs the dense float64 reference (floored at natural size; "
             "see the script's docstring). Command: `python experiments/loss_accuracy.py`.", "",
             "| inputs | loss | cases | value | dx | dy | d scale | d bias |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for dtype in ("float64", "float32", "bfloat16"):
        for loss in ("clip", "siglip"):
            group = [r for r in rows if r["dtype"] == dtype and r["loss"] == loss]
            worst = {q: max(r[q] for r in group) for q in QUANTITIES if q in group[0]}
            cells = " | ".join(f"{worst[q]:.1e}" if q in worst else "-" for q in QUANTITIES)
            lines.append(f"| {dtype} | {loss} | {len(group)} | {cells} |")
    zoo = zoo_errors()
    lines += ["", "The zoo, float64 (value floored at scale / 100, gradients at their natural size):",
              "", "| loss | cases | value | worst gradient |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {cases} | {value:.1e} | {grad:.1e} |"
              for name, (cases, value, grad) in zoo.items()]
    rows += [{"dtype": "float64", "loss": name, "cases": cases, "value": value, "worst_grad": grad}
             for name, (cases, value, grad) in zoo.items()]
    meta = {"command": "python experiments/loss_accuracy.py", "device": benchlib.device_description()}
    benchlib.write_results(benchlib.RESULTS, "loss_accuracy", meta, rows, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
