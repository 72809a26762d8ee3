"""The packages depend one way: eigml (the core) <- index <- service, and eigml <- training.

Checked twice: statically, every import statement in each package's files (function-level ones too);
and dynamically, importing every module of `index` and `service` in a fresh process loads no `training`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {  # package -> top-level packages it must never import
    "eigml": {"training", "index", "service", "bench"},
    "index": {"training", "service", "bench"},
    "service": {"training", "bench"},
    "bench": {"training"},
    "training": {"service", "bench"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_against_the_dependency_direction(package: str) -> None:
    wrong = {f"{path.relative_to(REPO)} imports {name}"
             for path in sorted((REPO / package).rglob("*.py"))
             for name in imported_packages(path) & FORBIDDEN[package]}
    assert not wrong, sorted(wrong)


def test_serving_loads_no_training_code() -> None:
    modules = sorted(f"{p.parent.name}.{p.stem}" for package in ("index", "service")
                     for p in (REPO / package).glob("*.py") if p.stem != "__main__")
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'training'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         check=True)
    assert out.stdout.strip() == "[]"
