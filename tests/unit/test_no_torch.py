"""Serving code never imports torch, and each service loads only the libraries its job needs:
each service module, imported alone, leaves the others unloaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.local.stack import SERVICES
from tests.utils.servers import REPO_ROOT

NEVER = ("torch", "pandas", "implicit", "training")
# what a service must not load beyond NEVER (a stateless stage holds no model and no broker)
ALSO_NOT = {
    "filtering": ("onnxruntime", "hnswlib", "kafka", "redis"),
    "ranking": ("hnswlib", "kafka", "redis"),
    "feature_store": ("onnxruntime", "hnswlib", "kafka"),
    "events": ("onnxruntime", "hnswlib", "redis"),
    "ingest": ("onnxruntime", "hnswlib"),
    "offline_sink": ("onnxruntime", "hnswlib"),
}
CHECK = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); "
    "bad = [m for m in sys.argv[2].split(',') if m in sys.modules]; "
    "print(','.join(bad)); sys.exit(1 if bad else 0)"
)


@pytest.mark.parametrize("name", SERVICES)
def test_service_app_imports_only_what_it_needs(name: str) -> None:
    forbidden = ",".join(NEVER + ALSO_NOT.get(name, ()))
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, f"services.{name}.app", forbidden],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"services.{name} pulled in: {proc.stdout} {proc.stderr[-2000:]}"
