"""Tiny digits configs, CLI subprocesses and metrics readers shared by the trainer tests."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from configs import digits_clip

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(data_dir: str, **fields):
    """digits_clip shrunk for tests: a 32-wide ViT and text tower, batch 32, no plots/bar."""
    c = digits_clip.get_config()
    c.total_steps = 6
    c.batch_size = 32
    c.log_every = 1
    c.eval_every = 0
    c.checkpoint_every = 2
    c.progress_bar = False
    c.plots = False
    c.model.image_options = {"width": 32, "mlp_dim": 64, "num_heads": 2, "depth": 1}
    c.model.text_options = {"width": 32, "mlp_dim": 64, "num_heads": 2, "depth": 1}
    c.model.embed_dim = 32
    c.optimizer.warmup_steps = 2
    c.eval.max_examples = 64
    c.eval.batch_size = 64
    c.data.data_dir = data_dir
    c.data.num_threads = 1
    for path, value in fields.items():
        target = c
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return c


def cli_flags(config, base=None, prefix="config.") -> list[str]:
    """--config.X=V flags that turn digits_clip's defaults into `config`; a nested dict whose
    keys differ from the default's is passed whole, as JSON."""
    base = digits_clip.get_config() if base is None else base
    flags = []
    for key, value in config.items():
        if hasattr(value, "items"):
            if set(value.keys()) == set(base[key].keys()):
                flags += cli_flags(value, base[key], f"{prefix}{key}.")
            else:
                flags.append(f"--{prefix}{key}={json.dumps(value.to_dict())}")
        elif base[key] != value:
            flags.append(f"--{prefix}{key}={value}")
    return flags


def device_env(num_devices: int) -> dict:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    others = [f for f in env.get("XLA_FLAGS", "").split()
              if "xla_force_host_platform_device_count" not in f]  # e.g. conftest's codegen
    env["XLA_FLAGS"] = " ".join([f"--xla_force_host_platform_device_count={num_devices}",
                                 *others])
    env["PYTHONPATH"] = str(ROOT)
    return env


def main_command(config, workdir, *extra) -> list[str]:
    return [sys.executable, "-m", "contrastive.main", "--config=configs/digits_clip.py",
            f"--workdir={workdir}", *cli_flags(config), *extra]


def run_main(config, workdir, num_devices=8, extra=(), timeout=300):
    result = subprocess.run(main_command(config, workdir, *extra), cwd=ROOT,
                            env=device_env(num_devices), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(workdir) -> np.ndarray:
    """Per-step losses from metrics.jsonl, checking there is exactly one line per step."""
    lines = [json.loads(l) for l in Path(workdir, "metrics.jsonl").read_text().splitlines()]
    steps = [l["step"] for l in lines]
    assert steps == list(range(1, len(steps) + 1)), steps
    return np.array([l["loss"] for l in lines])


def max_rel_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def _tensorboard(workdir):
    # TensorBoard's own reader (no TensorFlow needed); purge off, so a duplicate would show.
    from tensorboard.backend.event_processing import event_accumulator

    reader = event_accumulator.EventAccumulator(
        str(Path(workdir, "tensorboard")), purge_orphaned_data=False,
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    reader.Reload()
    return reader


def tensorboard_scalars(workdir, tag) -> list[tuple[int, float]]:
    """(step, value) of every event of a scalar tag in workdir/tensorboard, in file order."""
    return [(e.step, e.value) for e in _tensorboard(workdir).Scalars(tag)]


def tensorboard_text(workdir, tag) -> list[tuple[int, str]]:
    """(step, text) of every event of a text tag in workdir/tensorboard."""
    return [(e.step, e.tensor_proto.string_val[0].decode())
            for e in _tensorboard(workdir).Tensors(f"{tag}/text_summary")]


def first_batch_and_state(config, mesh):
    """(task, the first training batch, the initial TrainState) of `config` on `mesh`, built
    as the trainer builds them (for tests of the step's gradient computation)."""
    from contrastive import parallel
    from contrastive import task as task_lib
    from contrastive.data import from_config as data_lib
    from contrastive.train import state as state_lib

    rules = parallel.DEFAULT_RULES
    data = data_lib.make_train_data(config, parallel.batch_sharding(mesh))
    task = task_lib.make_task(config, data.tokenizer.vocab_size)
    optimizer, _ = state_lib.make_optimizer(config.optimizer, config.total_steps)
    inputs = task_lib.model_inputs(task, data.example, parallel.batch_shards(mesh))
    init_fn = state_lib.make_init_fn(task, optimizer, inputs)
    state = state_lib.init_state(init_fn, state_lib.state_shardings(
        task, init_fn, inputs, mesh, rules), config.seed, mesh, rules)
    return task, next(data.iterator), state
