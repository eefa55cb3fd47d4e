"""One writer per workdir: a live owner makes a second run exit naming it; a lock left by a
killed process is taken over."""
import json
import logging
import os
import socket
import subprocess

import numpy as np
import pytest

from contrastive.errors import UserError
from contrastive.train import loop
from contrastive.train import workdir as workdir_lib
from tests.reliability.conftest import STEPS
from tests.train.helpers import ROOT, device_env, losses, main_command


def test_a_live_owner_is_named_and_the_second_run_refused(run_config, copy_of_finished):
    with workdir_lib.Lock(str(copy_of_finished)):
        with pytest.raises(UserError, match=f"is in use by process {os.getpid()} on "
                                            f"{socket.gethostname()}"):
            loop.train_and_evaluate(run_config, str(copy_of_finished))


def test_a_stale_lock_is_taken_over(run_config, copy_of_finished, caplog):
    # The record a killed process leaves: its file, but no flock on it any more.
    (copy_of_finished / ".lock-0").write_text(json.dumps({"host": "gone", "pid": 999999}))
    with caplog.at_level(logging.WARNING):
        summary = loop.train_and_evaluate(run_config, str(copy_of_finished))
    assert summary["step"] == STEPS
    assert "Took over the lock of process 999999 on gone" in caplog.text
    assert (copy_of_finished / ".lock-0").read_text() == ""  # released when the run ended


def test_two_identical_commands_at_once_leave_one_run(run_config, finished_run, tmp_path):
    command = main_command(run_config, tmp_path / "run")
    processes = [subprocess.Popen(command, cwd=ROOT, env=device_env(8), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2).strip().splitlines()
    assert len(refused) == 1 and "is in use by process" in refused[0], refused
    # One run's records, one line per step, the losses of the run without a rival.
    np.testing.assert_allclose(losses(tmp_path / "run"), losses(finished_run), rtol=1e-5)
