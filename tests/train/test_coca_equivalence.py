"""CoCa (digits_coca's objective on tiny towers) trains the same on 8 devices as on 1, and with
two micro-batches (GradCache replaying the captioning term) as with one."""
import json

import pytest

from contrastive.train import loop
from tests.train.helpers import losses, max_rel_diff, run_main, tiny_config

MESH = {"data": 2, "fsdp": 2, "model": 2}


@pytest.fixture(scope="module")
def config(digits_data_dir):
    c = tiny_config(digits_data_dir, mesh=MESH, total_steps=8, checkpoint_every=0)
    c.model.caption_weight = 2.0
    c.model.captioner = {"width": 32, "depth": 1, "mlp_dim": 64, "num_heads": 2}
    return c


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("coca_reference")
    loop.train_and_evaluate(config, str(workdir))
    return workdir


@pytest.mark.slow  # three short trainer runs
@pytest.mark.parametrize("microbatches", [1, 2])
def test_one_device_gives_the_coca_losses_of_eight(config, reference, tmp_path_factory,
                                                   microbatches):
    one = config.copy_and_resolve_references()
    one.mesh, one.num_microbatches = {"data": 1}, microbatches
    workdir = tmp_path_factory.mktemp(f"coca_one_k{microbatches}")
    run_main(one, workdir, num_devices=1)
    first = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx(first["contrastive_loss"] + 2 * first["caption_loss"],
                                          rel=1e-5)
    diff = max_rel_diff(losses(workdir), losses(reference))
    print(f"\nCoCa, 1 device (k={microbatches}) vs 8 (mesh {MESH}): max rel diff {diff:.2e}")
    assert diff < 1e-4
