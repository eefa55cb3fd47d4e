"""experiments/loss_zoo.py --fast end to end (three tiny runs and the cost of every loss): slow."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fast_zoo_writes_its_table_and_skips_finished_runs(tmp_path):
    cmd = [sys.executable, "experiments/loss_zoo.py", "--fast", f"--out={tmp_path}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=900)
    results = json.loads((tmp_path / "loss_zoo_fast.json").read_text())
    rows = results["rows"]
    assert {r["setting"] for r in rows} == {"pairs", "views"}
    assert all(0 <= (r.get("zero_shot_top1") or r.get("knn_top1")) <= 1 for r in rows)
    assert all(r["time_s"] > 0 and "error" not in r for r in rows)
    assert (tmp_path / "loss_zoo_fast.png").stat().st_size > 1000
    summaries = sorted((tmp_path / "loss_zoo_runs_fast").glob("*/*/summary.json"))
    assert len(summaries) == 3
    written = [p.stat().st_mtime_ns for p in summaries]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=900)
    assert [p.stat().st_mtime_ns for p in summaries] == written  # finished runs are skipped
