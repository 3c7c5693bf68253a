"""Metrics: stage timers, request histograms by route template, text exposition."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.ranking.settings import Settings
from shared.platform.metrics import stage_timer
from shared.platform.service import create_app


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_stage_timer_observes_and_counts_errors() -> None:
    labels = {"service": "unit", "stage": "ann"}
    before = _value("cascade_stage_duration_seconds_count", labels)
    with stage_timer("unit", "ann"):
        pass
    with pytest.raises(ValueError), stage_timer("unit", "ann"):
        raise ValueError("boom")
    assert _value("cascade_stage_duration_seconds_count", labels) == before + 2
    errors = {"service": "unit", "stage": "ann", "kind": "ValueError"}
    assert _value("cascade_stage_errors_total", errors) >= 1


def test_request_metrics_use_route_template_and_text_format() -> None:
    app = create_app(Settings(service_name="metrics-unit"))

    @app.api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    with TestClient(app) as client:
        for i in range(3):
            assert client.get(f"/items/{i}").status_code == 200
        assert client.get("/items/notanint").status_code == 422
        resp = client.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    hist = families["cascade_http_request_duration_seconds"]
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in hist.samples
        if s.name.endswith("_count") and s.labels["service"] == "metrics-unit"
    }
    assert counts[("/items/{item_id}", "200")] == 3
    assert counts[("/items/{item_id}", "422")] == 1
    assert not any(route.startswith("/items/0") for route, _ in counts)


def test_request_id_is_echoed_or_generated() -> None:
    app = create_app(Settings(service_name="rid-unit"))
    with TestClient(app) as client:
        assert (
            client.get("/healthz", headers={"x-request-id": "abc"}).headers["x-request-id"] == "abc"
        )
        assert len(client.get("/healthz").headers["x-request-id"]) == 32
