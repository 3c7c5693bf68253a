"""Serving code never imports the training package: a static scan of every import.

``training`` may import ``shared``; ``services`` and ``shared`` must never import ``training``
(not even lazily inside a function): a serving image could not run it, and the dependency
would point the wrong way. The scan reads the source, so it also catches imports that only
run on some code path, and ``importlib.import_module("training...")`` calls.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVING_TREES = ("services", "shared")
FORBIDDEN = "training"


def forbidden_imports(source: str, filename: str = "<source>") -> Iterator[tuple[int, str]]:
    """(line, module) of every import of ``training`` (or a submodule) in ``source``."""
    for node in ast.walk(ast.parse(source, filename)):
        for name in _imported(node):
            if name == FORBIDDEN or name.startswith(FORBIDDEN + "."):
                yield getattr(node, "lineno", 0), name


def _imported(node: ast.AST) -> list[str]:
    """Absolute module names ``node`` imports (relative imports stay inside their package)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module] if node.level == 0 and node.module else []
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module" and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _serving_modules() -> list[Path]:
    return sorted(p for tree in SERVING_TREES for p in (REPO_ROOT / tree).rglob("*.py"))


def test_services_and_shared_never_import_training() -> None:
    files = _serving_modules()
    assert len(files) > 50  # the scan sees the trees
    found = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {module}"
        for path in files
        for line, module in forbidden_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not found, "serving code imports training/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import training",
        "import training.data.movielens as ml",
        "from training.data import load_movielens",
        "def f():\n    from training.data.splits import temporal_split\n",
        "import importlib\nimportlib.import_module('training.export')",
    ],
)
def test_the_scan_finds_every_form_of_import(source: str) -> None:
    assert [m for _, m in forbidden_imports(source)], source


@pytest.mark.parametrize(
    "source",
    ["import trainingwheels", "from shared.datasets import movielens", "from . import training"],
)
def test_the_scan_ignores_lookalikes(source: str) -> None:
    assert not list(forbidden_imports(source)), source
