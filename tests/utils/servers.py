"""Real servers for tests: Redis, the Tansu broker, MLflow and Cascade service processes."""

from __future__ import annotations

import os
from pathlib import Path

from deploy.local.processes import ProcessSpec
from deploy.local.stack import service_on_free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def service_spec(
    name: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    require_ready: bool = False,
) -> ProcessSpec:
    """A Cascade service as its own process on a free port (ready on /healthz, or /readyz)."""
    path = "/readyz" if require_ready else "/healthz"
    return service_on_free_port(name, env, port=port, ready_path=path, ready_timeout_s=60)


def env_or_none(name: str) -> str | None:
    """An externally provided server address (to reuse servers across runs), if any."""
    value = os.environ.get(name, "").strip()
    return value or None
