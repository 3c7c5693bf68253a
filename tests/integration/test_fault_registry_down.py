"""Fault matrix: MLflow is down when a service starts → it serves its cached models, says so,
and moves to the registry's once MLflow answers again.

The service reaches MLflow through a TCP proxy on a fixed port, so the test can take the
"registry" away and bring it back without touching the session's MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import free_port, running
from tests.utils.delay_proxy import DelayProxy
from tests.utils.servers import service_spec

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def models_check(base: str) -> dict[str, object]:
    """The ``models`` readiness check of a service."""
    body = httpx.get(f"{base}/readyz", timeout=5).json()
    return {"ready": body["ready"], "reason": str(body["checks"]["models"]["reason"])}


def test_a_service_started_while_mlflow_is_down_serves_its_cached_models(
    registered_models: dict[str, str],
    mlflow_tracking_uri: str,
    kafka_bootstrap: str,
    server_dir: Path,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CASCADE_MLFLOW_URI": f"http://127.0.0.1:{port}",
        "CASCADE_MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "CASCADE_MODEL_ALIASES": "production",
        "CASCADE_MODEL_POLL_S": "1",
    }
    logs = server_dir / "logs"
    with DelayProxy(mlflow_tracking_uri, 0.0, port=port):
        with running(service_spec("ranking", env, require_ready=True), logs) as first:
            reason = str(models_check(first.spec.url)["reason"])
    # the version production had then (the rollout tests may have moved it since the session
    # registered it): what the cache must give back
    version = reason.split("cascade-ranker/")[1].split(" ")[0]
    assert "from cache" not in reason

    # MLflow unreachable: the restarted service is ready on the cached copy and says so.
    with running(service_spec("ranking", env, require_ready=True), logs) as second:
        base = second.spec.url
        check = models_check(base)
        assert check["ready"] is True
        assert f"cascade-ranker/{version} (@production, from cache: registry unreachable)" in str(
            check["reason"]
        )
        held = httpx.get(f"{base}/metrics", timeout=5).text
        assert "from cache" in held  # the held-models gauge names the cached label too

        # MLflow back: the same version, now under the registry's own label.
        with DelayProxy(mlflow_tracking_uri, 0.0, port=port):
            eventually(
                lambda: "from cache" not in str(models_check(base)["reason"]), 30, "registry"
            )
            assert f"cascade-ranker/{version} (@production)" in str(models_check(base)["reason"])


def test_without_a_cached_copy_the_service_waits_for_the_registry_and_says_why(
    kafka_bootstrap: str, server_dir: Path, tmp_path: Path
) -> None:
    env = {
        "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CASCADE_MLFLOW_URI": f"http://127.0.0.1:{free_port()}",
        "CASCADE_MODEL_CACHE_DIR": str(tmp_path / "empty-cache"),
        "CASCADE_MODEL_ALIASES": "production",
    }
    with running(service_spec("ranking", env), server_dir / "logs") as proc:
        eventually(lambda: "no cached copy" in str(models_check(proc.spec.url)["reason"]), 30, "")
        check = models_check(proc.spec.url)
        assert check["ready"] is False
        assert "registry unreachable" in str(check["reason"])
