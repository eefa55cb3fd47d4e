"""A tiny digits_clip run (configs/digits_clip.py:runlocal: 4 steps, evaluated and checkpointed
at 2 and 4), trained once on one CPU device for the standalone evaluator's tests."""
import subprocess
import sys

import pytest

from tests.train.helpers import ROOT, device_env


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, digits_data_dir):
    """The workdir of the finished run. One device, as the evaluations that compare with it:
    the same device count gives the same figures to the last bit."""
    workdir = tmp_path_factory.mktemp("digits_clip_runlocal")
    result = subprocess.run(
        [sys.executable, "-m", "contrastive.main", "--config=configs/digits_clip.py:runlocal",
         f"--workdir={workdir}", f"--config.data.data_dir={digits_data_dir}",
         "--config.progress_bar=False", "--config.plots=False"],
        cwd=ROOT, env=device_env(1), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir
