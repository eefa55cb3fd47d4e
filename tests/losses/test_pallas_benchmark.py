"""experiments/loss_gpu.py in its CPU smoke mode (Pallas interpreted): every implementation runs,
the largest-N search runs, and the result files are written where asked (never into results/)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "loss_gpu.py"


@pytest.mark.slow  # ~25 s alone on 2 cores, ~40 s when they are shared: ten fresh processes
def test_fast_mode_writes_every_figure(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--fast", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "loss_gpu_fast.json", "loss_gpu_fast.md", "loss_gpu_fast.png"]
    rows = json.loads((tmp_path / "loss_gpu_fast.json").read_text())["rows"]
    sweep = {(r["impl"], r["n"]) for r in rows if not r["search"]}
    assert sweep == {(impl, n) for impl in ("xla", "pallas", "dense") for n in (64, 128)}
    assert {r["impl"] for r in rows if r["search"]} == {"xla", "pallas", "dense"}
    for r in rows:
        assert "error" not in r, r
        assert r["time_s"] > 0 and r["peak_bytes"] > 0
        # The model counts 8 N^2 d; Pallas CLIP executes 12 N^2 d (see the script).
        ratio = {"xla": 1.0, "pallas": 1.5, "dense": 0.75}[r["impl"]]
        assert abs(r["executed_tflops"] / r["model_tflops"] - ratio) < 1e-9
    assert all(r["blocks"]["rows"] == 128 for r in rows if r["impl"] == "pallas" and r["n"] >= 128)
    table = (tmp_path / "loss_gpu_fast.md").read_text()
    assert "| clip | 32 | 128 | pallas |" in table
    assert "- clip: xla 256, pallas 256, dense 256" in table
