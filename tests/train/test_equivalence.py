"""The same digits_clip steps agree across layouts and processes.

Reference: one process, 8 fake CPU devices, mesh {"data": 2, "fsdp": 2, "model": 2}, run
in-process. Compared with 1 device (rel 1e-4) and with two real processes x 4 devices joined by
jax.distributed over gloo (rel 1e-5). Interruptions (SIGKILL at five moments, corrupt
checkpoints) are in tests/reliability. Run with -s to see the figures.
"""
import subprocess

import pytest

from contrastive.train import loop
from tests.train.helpers import (ROOT, device_env, free_port, losses, main_command,
                                 max_rel_diff, run_main, tiny_config)

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
