"""Fast routes: answered in front of FastAPI with the shell's duties done inline (request id,
latency metric by route template and status, body limit, 4xx chosen by the handler, a bug
answered as a logged 500), and written into the service's OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.filtering.settings import Settings
from shared.platform.fast_routes import (
    FastRequest,
    FastResponse,
    FastRoute,
    FastRoutes,
    RequestError,
    invalid,
)
from shared.platform.service import create_app


async def _echo(req: FastRequest) -> FastResponse:
    if req.query().get("fail") == "bug":
        raise RuntimeError("a bug")
    if req.query().get("fail") == "422":
        raise invalid(("query", "fail"), "not today")
    if req.query().get("fail") == "503":
        raise RequestError(503, "loading", {"Retry-After": "2"})
    return FastResponse(200, req.body or req.query_string, "application/octet-stream")


def _client(name: str, max_body: int = 1 << 20) -> TestClient:
    app = create_app(Settings(service_name=name))
    app.add_fast_route(
        FastRoute(
            "POST",
            "/v1/echo",
            _echo,
            {"summary": "echo", "responses": {"200": {"description": "x"}}},
        )
    )
    if max_body != 1 << 20:
        app._asgi = FastRoutes(app.api, name, app.fast_routes, max_body=max_body)
    return TestClient(app)


def _count(service: str, status: str) -> float:
    labels = {"service": service, "route": "/v1/echo", "method": "POST", "status": status}
    return REGISTRY.get_sample_value("cascade_http_request_duration_seconds_count", labels) or 0.0


def test_a_fast_route_answers_and_is_measured_like_any_route() -> None:
    with _client("fast-unit") as client:
        resp = client.post("/v1/echo", content=b"abc", headers={"x-request-id": "rid-1"})
        assert resp.status_code == 200 and resp.content == b"abc"
        assert resp.headers["x-request-id"] == "rid-1"
        assert resp.headers["content-length"] == "3"
        assert len(client.post("/v1/echo", content=b"x").headers["x-request-id"]) == 32
        assert client.get("/healthz").status_code == 200  # everything else: FastAPI
    assert _count("fast-unit", "200") == 2


def test_handler_errors_become_answers_never_crashes() -> None:
    with _client("fast-errors") as client:
        bad = client.post("/v1/echo?fail=422", content=b"x")
        assert bad.status_code == 422
        assert bad.json() == {
            "detail": [{"loc": ["query", "fail"], "msg": "not today", "type": "value_error"}]
        }
        busy = client.post("/v1/echo?fail=503", content=b"x")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        bug = client.post("/v1/echo?fail=bug", content=b"x")
        assert bug.status_code == 500 and bug.json() == {"detail": "internal error"}
        assert client.post("/v1/echo", content=b"still fine").status_code == 200
    assert _count("fast-errors", "500") == 1 and _count("fast-errors", "422") == 1


def test_a_body_over_the_limit_is_a_413() -> None:
    with _client("fast-limit", max_body=10) as client:
        assert client.post("/v1/echo", content=b"x" * 11).status_code == 413
        assert client.post("/v1/echo", content=b"x" * 10).status_code == 200


def test_fast_routes_are_in_the_openapi_document() -> None:
    with _client("fast-openapi") as client:
        doc = client.get("/openapi.json").json()
    assert doc["paths"]["/v1/echo"]["post"]["summary"] == "echo"
    assert "/readyz" in doc["paths"]
