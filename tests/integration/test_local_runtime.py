"""The local runtime (`make up` / `make down`): everything starts, reports ready, and stops
without leaving a process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.processes import free_port, group_alive
from deploy.local.stack import SERVICES
from tests.utils.servers import REPO_ROOT

pytestmark = pytest.mark.integration


def _runtime(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.local", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _recommend_until_whole(gateway: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """A recommendation through every stage (the first calls may still warm connections up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rec = httpx.get(f"{gateway}/v1/recommendations", params={"user_id": "1", "k": 5})
        assert rec.status_code == 200, rec.text
        body: dict[str, Any] = rec.json()
        if not body["degraded"] or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_up_ready_then_down_leaves_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CASCADE_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(
        {
            "CASCADE_LOCAL_RUN_DIR": str(run_dir),
            "CASCADE_LOCAL_MODELS_DIR": str(tmp_path / "models"),
            "CASCADE_LOCAL_REDIS_PORT": str(free_port()),
            "CASCADE_LOCAL_KAFKA_PORT": str(free_port()),
            "CASCADE_LOCAL_MLFLOW_PORT": str(free_port()),
            "CASCADE_LOCAL_PROMETHEUS_PORT": str(free_port()),
            "CASCADE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_KAFKA_HEARTBEAT_INTERVAL_MS": "2000",
        }
    )
    ports = {name: free_port() for name in SERVICES}
    env.update({f"CASCADE_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    try:
        up = _runtime(["up", "--detach", "--tiny"], env, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((run_dir / "state.json").read_text())
        names = {p["name"] for p in state["processes"]}
        assert {"redis", "kafka", "mlflow", *SERVICES} <= names
        for name, port in ports.items():
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert ready.status_code == 200, (name, ready.text)
        assert "gateway" in up.stdout and str(ports["gateway"]) in up.stdout
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        body = _recommend_until_whole(gateway)
        assert len(body["items"]) == 5 and not body["degraded"], body["degraded_reasons"]
        status = _runtime(["status"], env, timeout=60)
        assert status.returncode == 0 and "DOWN" not in status.stdout
    finally:
        down = _runtime(["down"], env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not (run_dir / "state.json").exists()
    leftovers = [p for p in state["processes"] if group_alive(p["pid"])]
    assert not leftovers, f"still running after down: {leftovers}"
