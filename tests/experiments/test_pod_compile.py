"""experiments/pod_compile.py compiles the digits CLIP train step for a 2x2 v5e slice on this
host (no TPU): the per-chip memory is positive and below the chip's HBM. Needs libtpu
(`pip install -e ".[tpu]"`); run with `pytest -m slow tests/experiments/test_pod_compile.py`."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "pod_compile.py"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason='libtpu is not installed (pip install -e ".[tpu]")')
def test_digits_clip_compiles_for_v5e_2x2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--config=configs/digits_clip.py", "--topology=v5e:2x2",
         f"--out={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (row,) = json.loads((tmp_path / "pod_compile.json").read_text())["rows"]
    assert row["chips"] == 4 and row["per_chip"] == 256 // 4
    assert 0 < row["hbm_bytes"] < row["hbm_gib"] * 2**30 and row["fits"]
    assert row["flops"] > 0 and (tmp_path / "pod_compile.md").exists()
