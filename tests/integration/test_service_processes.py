"""Every service runs as its own process, reports ready, and serves Prometheus metrics.

Also the fault rule: a service whose dependency is down starts anyway, says why it is not
ready, and becomes ready by itself once the dependency is back.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local import infra
from deploy.local.processes import StartupError, free_port, running
from deploy.local.stack import SERVICES
from tests.conftest import ServiceStarter
from tests.integration.serving_fixtures import catalog, write_synthetic_bundle
from tests.utils.servers import service_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model bundle (ONNX built without torch) for the services that load models."""
    return write_synthetic_bundle(tmp_path_factory.mktemp("bundle"), catalog(60))


def _wait_status(url: str, status: int, timeout_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    resp = httpx.get(url, timeout=5)
    while resp.status_code != status and time.monotonic() < deadline:
        time.sleep(0.2)
        resp = httpx.get(url, timeout=5)
    assert resp.status_code == status, resp.text
    return resp


@pytest.mark.parametrize("name", SERVICES)
def test_service_starts_ready_and_serves_metrics(
    name: str,
    start_service: ServiceStarter,
    redis_url: str,
    kafka_bootstrap: str,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    env = {
        "CASCADE_REDIS_URL": redis_url,
        "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CASCADE_MODELS_DIR": str(models_dir),
        "CASCADE_OFFLINE_SINK_DATA_DIR": str(tmp_path / "events"),
        # The gateway alone has no stages to warm up against: report ready without waiting.
        "CASCADE_GATEWAY_WARMUP_GIVE_UP_S": "0",
    }
    base = start_service(name, env)
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "service": name}
    ready = _wait_status(f"{base}/readyz", 200).json()
    assert ready["ready"] is True and ready["service"] == name
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(metrics.text)}
    assert {"cascade_http_request_duration_seconds", "cascade_service_up"} <= names
    assert f'service="{name}"' in metrics.text


def test_redis_down_then_back(start_service: ServiceStarter, tmp_path: Path) -> None:
    port = free_port()
    base = start_service("feature_store", {"CASCADE_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    body = _wait_status(f"{base}/readyz", 503).json()
    assert body["ready"] is False
    assert "redis unreachable" in body["checks"]["redis"]["reason"]
    assert httpx.get(f"{base}/healthz").status_code == 200  # alive, not crash-looping
    with running(infra.redis_spec(port, tmp_path / "redis"), tmp_path / "logs"):
        _wait_status(f"{base}/readyz", 200)


def test_broker_down_then_back(start_service: ServiceStarter, tmp_path: Path) -> None:
    port = free_port()
    base = start_service("events", {"CASCADE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    body = _wait_status(f"{base}/readyz", 503).json()
    assert body["checks"]["kafka"]["ok"] is False and body["checks"]["kafka"]["reason"]
    with running(infra.tansu_spec(port), tmp_path / "logs"):
        _wait_status(f"{base}/readyz", 200, timeout_s=60)


def test_a_port_taken_by_another_service_is_not_mistaken_for_ready(
    start_service: ServiceStarter, tmp_path: Path
) -> None:
    """The probe checks who answers: a second service started on a port the first one holds
    fails to start (it cannot bind), instead of passing for ready on the first one's answers."""
    base = start_service("filtering")
    port = int(base.rsplit(":", 1)[1])
    assert infra.service_ok(f"{base}/healthz", "filtering")
    assert not infra.service_ok(f"{base}/healthz", "reranking")
    assert not infra.service_ok(f"{base}/metrics", "filtering")  # 200, but not a service status
    spec = service_spec("reranking", port=port)
    with pytest.raises(StartupError, match="reranking exited"):
        with running(spec, tmp_path / "logs"):
            pass
    assert "address already in use" in (tmp_path / "logs" / "reranking.log").read_text().lower()


def test_the_gateway_stays_ready_and_answers_degraded_without_redis(
    start_service: ServiceStarter,
) -> None:
    """A Redis outage must not take the gateways out of their Service (Kubernetes readiness):
    /readyz stays 200, names Redis as down, and answers come back marked degraded."""
    env = {
        "CASCADE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "CASCADE_GATEWAY_SERVED_LOG": "false",
        "CASCADE_GATEWAY_WARMUP_GIVE_UP_S": "0",
    }
    base = start_service("gateway", env)
    body = _wait_status(f"{base}/readyz", 200).json()
    assert body["checks"]["redis"]["ok"] is False and "redis" in body["checks"]["redis"]["reason"]
    answer = httpx.get(f"{base}/v1/recommendations", params={"user_id": "1", "k": 5}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["degraded"], answer.text
