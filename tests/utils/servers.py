"""Real servers for tests: Redis, the Tansu broker, MLflow and Cascade service processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from deploy.local import infra
from deploy.local.processes import ProcessSpec, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def service_spec(
    name: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    require_ready: bool = False,
) -> ProcessSpec:
    """A Cascade service as its own process (``python -m services.<name>``) on a free port."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {
        f"CASCADE_{name.upper()}_PORT": str(port),
        "CASCADE_LOG_JSON": "true",
        "PYTHONPATH": str(REPO_ROOT),
        **(env or {}),
    }
    check = f"{base}/readyz" if require_ready else f"{base}/healthz"
    return ProcessSpec(
        name,
        [sys.executable, "-m", f"services.{name}"],
        lambda: infra.http_ok(check),
        env=full_env,
        cwd=REPO_ROOT,
        ready_timeout_s=60,
        url=base,
    )


def env_or_none(name: str) -> str | None:
    """An externally provided server address (to reuse servers across runs), if any."""
    value = os.environ.get(name, "").strip()
    return value or None
