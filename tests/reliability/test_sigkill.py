"""SIGKILL at five moments of a run, then the same command again: the resumed run's records
equal the uninterrupted run's (one line per step, the same losses), and nothing is lost."""
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import STEPS
from tests.train.helpers import (ROOT, device_env, losses, main_command, max_rel_diff,
                                 tensorboard_scalars)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _saving(workdir: Path, step=None) -> bool:
    """Whether orbax is writing a checkpoint (of `step`) right now: its temporary directory."""
    folder = workdir / "checkpoints"
    return folder.is_dir() and any(
        "tmp" in p.name and (step is None or p.name.startswith(f"{step}.")) for p in folder.iterdir())


MOMENTS = {  # name: what the workdir shows at that moment
    "startup": lambda w: (w / ".lock-0").exists() and (w / ".lock-0").stat().st_size > 0
    and not (w / "metrics.jsonl").exists(),
    "between_saves": lambda w: _lines(w / "metrics.jsonl") >= 3,
    "during_a_save": lambda w: _saving(w),
    "final_evaluation": lambda w: _lines(w / "metrics.jsonl") == STEPS
    and not (w / "eval.jsonl").exists(),
    "final_save": lambda w: _saving(w, STEPS),
}
SLOW = ("startup", "during_a_save", "final_evaluation", "final_save")


@pytest.mark.parametrize("moment", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m
                                    for m in MOMENTS])
def test_killed_at_a_moment_and_rerun_gives_the_uninterrupted_run(run_config, finished_run,
                                                                  tmp_path, moment):
    workdir = tmp_path / "run"
    command = main_command(run_config, workdir)
    process = subprocess.Popen(command, cwd=ROOT, env=device_env(8),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not MOMENTS[moment](workdir) and time.time() < deadline and process.poll() is None:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"the run ended before the {moment}"
    assert not (workdir / "summary.json").exists()

    result = subprocess.run(command, cwd=ROOT, env=device_env(8), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    diff = max_rel_diff(losses(workdir), losses(finished_run))  # one line per step
    print(f"\nkilled at {moment}, resumed: max rel diff of {STEPS} losses {diff:.2e}")
    assert diff < 1e-5
    evaluations = [json.loads(l) for l in (workdir / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evaluations] == [STEPS]
    assert json.loads((workdir / "summary.json").read_text())["step"] == STEPS
    assert (workdir / "checkpoints" / str(STEPS)).is_dir()
    # TensorBoard: every step once, though the killed run may have logged past its checkpoint.
    assert [s for s, _ in tensorboard_scalars(workdir, "train/loss")] == list(range(1, STEPS + 1))
