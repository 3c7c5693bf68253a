"""Serving code never imports torch: each service module, imported alone, leaves it unloaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.local.stack import SERVICES
from tests.utils.servers import REPO_ROOT

CHECK = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); "
    "bad = [m for m in ('torch', 'pandas', 'implicit') if m in sys.modules]; "
    "print(','.join(bad)); sys.exit(1 if bad else 0)"
)


@pytest.mark.parametrize("name", SERVICES)
def test_service_app_imports_without_torch(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, f"services.{name}.app"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"services.{name} pulled in: {proc.stdout} {proc.stderr[-2000:]}"
