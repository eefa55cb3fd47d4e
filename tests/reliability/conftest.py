"""One finished tiny run for the whole fault-injection suite: every case copies it (or trains
beside it) and compares what is left afterwards with it."""
import shutil

import pytest

from contrastive.train import loop
from tests.train.helpers import tiny_config

STEPS = 8


@pytest.fixture(scope="session")
def run_config(digits_data_dir):
    """8 steps, a checkpoint every 2 (3 kept), an evaluation at the end."""
    return tiny_config(digits_data_dir, total_steps=STEPS, checkpoint_every=2)


@pytest.fixture(scope="session")
def finished_run(run_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished")
    loop.train_and_evaluate(run_config, str(workdir))
    return workdir


@pytest.fixture
def copy_of_finished(finished_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(finished_run, workdir)
    return workdir
