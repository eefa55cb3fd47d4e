"""The same digits_clip steps agree across layouts, processes and interruptions.

Reference: one process, 8 fake CPU devices, mesh {"data": 2, "fsdp": 2, "model": 2}, run
in-process. Compared with 1 device (rel 1e-4), with two real processes x 4 devices joined by
jax.distributed over gloo (rel 1e-5), with a run killed by SIGKILL and restarted (rel 1e-5), and
with a restart whose newest checkpoint is corrupt (rel 1e-5). Run with -s to see the figures.
"""
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from contrastive.train import loop
from tests.train.helpers import (ROOT, device_env, free_port, losses, main_command,
                                 max_rel_diff, run_main, tensorboard_scalars, tiny_config)

MESH = {"data": 2, "fsdp": 2, "model": 2}
STEPS = 24


@pytest.fixture(scope="module")
def config(digits_data_dir):
    return tiny_config(digits_data_dir, mesh=MESH, total_steps=STEPS, checkpoint_every=4)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    loop.train_and_evaluate(config, str(workdir))
    return workdir


def test_one_device_gives_the_losses_of_eight(config, reference, tmp_path):
    one = config.copy_and_resolve_references()
    one.mesh = {"data": 1}
    run_main(one, tmp_path, num_devices=1)
    diff = max_rel_diff(losses(tmp_path), losses(reference))
    print(f"\n1 device vs 8 (mesh {MESH}): max rel diff of {STEPS} losses {diff:.2e}")
    assert diff < 1e-4


def test_two_processes_give_the_losses_of_one(config, reference, tmp_path):
    port = free_port()
    processes = [
        subprocess.Popen(
            main_command(config, tmp_path, f"--coordinator_address=127.0.0.1:{port}",
                         "--num_processes=2", f"--process_id={i}"),
            cwd=ROOT, env=device_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in processes:
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
    diff = max_rel_diff(losses(tmp_path), losses(reference))
    print(f"\n2 processes x 4 devices vs 1 x 8: max rel diff of {STEPS} losses {diff:.2e}")
    assert diff < 1e-5


def _wait_for_lines(path: Path, count: int, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)


def test_kill_9_and_restart_gives_the_uninterrupted_losses(config, reference, tmp_path):
    command = main_command(config, tmp_path)
    process = subprocess.Popen(command, cwd=ROOT, env=device_env(8),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_lines(tmp_path / "metrics.jsonl", 10, process)  # past checkpoints 4 and 8
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "summary.json").exists()
    written_before_kill = len((tmp_path / "metrics.jsonl").read_text().splitlines())

    result = subprocess.run(command, cwd=ROOT, env=device_env(8), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 0 < int(result.stdout.split("resumed_from=")[1].split()[0]) < STEPS
    diff = max_rel_diff(losses(tmp_path), losses(reference))
    print(f"\nkilled after {written_before_kill} steps and resumed: max rel diff of {STEPS} "
          f"losses {diff:.2e}")
    assert diff < 1e-5
    # TensorBoard: every step once, though the killed run had logged some past its checkpoint.
    assert [s for s, _ in tensorboard_scalars(tmp_path, "train/loss")] == list(range(1, STEPS + 1))


def test_corrupt_latest_checkpoint_is_skipped_with_a_warning(config, reference, tmp_path,
                                                             caplog):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    latest = workdir / "checkpoints" / str(STEPS)
    for path in (latest / "state").rglob("*"):  # damage every array file of the newest step
        if path.is_file():
            path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        summary = loop.train_and_evaluate(config, str(workdir))
    assert f"Checkpoint at step {STEPS}" in caplog.text and "skipping it" in caplog.text
    assert summary["resumed_from"] == STEPS - config.checkpoint_every
    diff = max_rel_diff(losses(workdir), losses(reference))
    print(f"\nresumed past a corrupt checkpoint: max rel diff of {STEPS} losses {diff:.2e}")
    assert diff < 1e-5
    assert (workdir / "checkpoints" / str(STEPS) / "state").is_dir()  # written again
    # TensorBoard: the redone steps replace the first run's, each step once.
    assert tensorboard_scalars(workdir, "train/loss") == [
        (i + 1, pytest.approx(v, rel=1e-6)) for i, v in enumerate(losses(workdir))]
    assert [s for s, _ in tensorboard_scalars(workdir, "eval/zero_shot_top1")] == [STEPS]
