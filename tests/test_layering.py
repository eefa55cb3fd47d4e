"""Dependencies point one way: each layer of the package imports only the layers below it.

    data, parallel, errors -> models -> convert -> losses -> task, checkpoint -> evaluate -> train
    -> main

(parallel is the bottom utility every layer may use: meshes, rules, the ring). Packages in the
same layer do not import each other. Experiments and tests may import the package, never the
other way round, and experiments never import tests.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [("data", "parallel", "errors"), ("models",), ("convert",), ("losses",),
          ("task", "checkpoint"), ("evaluate",),
          ("train",), ("main",)]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _imports(path: Path) -> set[str]:
    """Every absolute module an import statement of `path` names (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> str | None:
    """The top-level part of the package a dotted name belongs to, if it is ours."""
    parts = module.split(".")
    if parts[0] != "contrastive" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in RANK else None


def _package_files():
    for path in sorted((ROOT / "contrastive").rglob("*.py")):
        rel = path.relative_to(ROOT / "contrastive")
        own = rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else None
        if own is not None:
            yield path, own


@pytest.mark.parametrize("path,own", list(_package_files()),
                         ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v)
def test_a_module_imports_only_lower_layers(path, own):
    assert own in RANK, f"{own} is in no layer: add it to LAYERS"
    upward = sorted(m for m in _imports(path)
                    if (layer := _layer(m)) and layer != own and RANK[layer] >= RANK[own])
    assert not upward, f"{path.relative_to(ROOT)} ({own}) imports {upward} from its layer or above"


def test_the_layering_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from contrastive.train import loop\n"
                   "from contrastive.task import make_task\n")
    assert {_layer(m) for m in _imports(bad)} == {"train", "task"}


def test_experiments_do_not_import_tests():
    for path in sorted((ROOT / "experiments").rglob("*.py")):
        assert not [m for m in _imports(path) if m.split(".")[0] == "tests"], path
