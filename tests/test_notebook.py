"""notebooks/quickstart.ipynb runs top to bottom (its fast mode, on CPU) and draws its plots."""
import os
import re
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    # The kernel inherits this environment: the fast mode, a scratch workdir, one CPU device.
    monkeypatch.setenv("CONTRASTIVE_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("CONTRASTIVE_NOTEBOOK_WORKDIR", str(tmp_path / "workdir"))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), \
        "commit the notebook with its outputs cleared"

    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 3  # curves, confusion matrix, similarity matrix
    text = "".join(o.get("text", "") for o in outputs)
    assert "zero-shot top-1 on all 454 held-out digits" in text
    # The timing of the run, and MFU "unknown" on a CPU (no peak to divide by).
    assert "of it waiting for data" in text and "MFU unknown" in text
    # One variable names the repository: the Colab link and the clone URL are built from it.
    sources = "".join(c.source for c in notebook.cells)
    (repository,) = re.findall(r'^REPOSITORY = "([^"]+)"', sources, re.M)
    assert sources.count(repository) == 1
    links = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/" \
        "quickstart.ipynb" in links
    assert (tmp_path / "workdir" / "summary.json").exists()
    assert os.path.isdir(tmp_path / "workdir" / "checkpoints")
