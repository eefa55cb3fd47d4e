"""The batch-scaling study end to end in its --fast form: outputs, and resuming skips runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "batch_scaling.py"
sys.path.insert(0, str(SCRIPT.parent))

import batch_scaling_run as spec


def _study(*args, out):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run([sys.executable, str(SCRIPT), "--fast", f"--out={out}", *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("run_id", ["clip_b256_tlearn", "siglip_b1024_t0.03", "my_loss_b16_t1e-02"])
def test_run_ids_round_trip(run_id):
    run = spec.Run.from_id(run_id)
    assert spec.Run.from_id(run.id) == run


def test_a_bad_run_id_is_a_clear_error():
    with pytest.raises(ValueError, match="LOSS_bBATCH_tTEMP"):
        spec.Run.from_id("clip_256")


def test_schedule_keeps_examples_seen_and_accumulates_large_batches():
    plans = {b: spec.schedule(spec.Run("clip", b, None), spec.FULL, 3e-3) for b in (16, 1024)}
    assert plans[16]["steps"] * 16 == plans[1024]["steps"] * 1024 == spec.FULL.examples
    assert plans[16]["microbatches"] == 1 and plans[1024]["microbatches"] == 4
    assert plans[1024]["learning_rate"] == pytest.approx(6e-3)  # 3e-3 * sqrt(1024 / 256)


# Three training subprocesses (about 100 s here), like loss_zoo's end-to-end test: kept out of the
# default run; `python -m pytest -m slow tests/experiments` runs both.
@pytest.mark.slow
def test_fast_study_writes_results_and_a_rerun_skips_finished_runs(tmp_path):
    commands = _study("--print_commands", out=tmp_path).stdout.strip().splitlines()
    assert len(commands) == 3 and all("--run=" in c for c in commands)

    _study(out=tmp_path)
    for name in ("batch_scaling_fast.json", "batch_scaling_fast.md",
                 "batch_scaling_batch_fast.png", "batch_scaling_temperature_fast.png"):
        assert (tmp_path / name).stat().st_size > 100, name
    rows = json.loads((tmp_path / "batch_scaling_fast.json").read_text())["rows"]
    assert {r["id"] for r in rows} == {"clip_b16_tlearn", "clip_b32_tlearn", "clip_b16_t0.1"}
    assert all(0.0 <= r["zero_shot_top1"] <= 1.0 for r in rows)
    fixed = next(r for r in rows if r["temperature_mode"] == "fixed")
    assert fixed["final_temperature"] == pytest.approx(0.1, rel=1e-5)
    assert next(r for r in rows if r["batch"] == 32)["microbatches"] == 2

    results = sorted((tmp_path / "batch_scaling_runs_fast").glob("*/result.json"))
    stamps = [p.stat().st_mtime_ns for p in results]
    rerun = _study(out=tmp_path)
    assert "_tlearn: top-1" not in rerun.stderr  # no run trained again
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert _study("--print_commands", out=tmp_path).stdout.strip() == ""
