"""Fast routes: answered in front of FastAPI with the shell's duties done inline (request id,
latency metric by route template and status, body limit, 4xx chosen by the handler, a bug
answered as a logged 500), and written into the service's OpenAPI document."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.filtering.settings import Settings
from shared.platform.contracts import declare_framework_answers
from shared.platform.fast_routes import (
    JSON,
    MSGPACK,
    FastRequest,
    FastResponse,
    FastRoute,
    FastRoutes,
    RequestError,
    declared_operation,
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


def test_the_document_declares_every_answer_the_shell_gives() -> None:
    """422, 503, 413 and 415 on a fast route, MessagePack beside JSON where the body takes
    both; FastAPI's own 400 and 422 on its routes with bodies; /metrics as text."""
    op = declared_operation(
        {
            "requestBody": {"content": {JSON: {"schema": {}}, MSGPACK: {"schema": {}}}},
            "responses": {"200": {"description": "ok", "content": {JSON: {"schema": {}}}}},
        }
    )
    assert set(op["responses"]) == {"200", "413", "415", "422", "503"}
    assert set(op["responses"]["200"]["content"]) == {JSON, MSGPACK}
    assert "Retry-After" in op["responses"]["503"]["headers"]
    app = create_app(Settings(service_name="fast-doc"))
    doc = app.api.openapi()
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    body_op = {"requestBody": {}, "responses": {"200": {}}}
    declared = declare_framework_answers({"paths": {"/x": {"post": body_op}}})
    assert set(declared["paths"]["/x"]["post"]["responses"]) == {"200", "400", "422"}


def test_another_method_on_a_fast_path_is_a_405_naming_the_allowed_one() -> None:
    with _client("fast-405") as client:
        resp = client.get("/v1/echo")
        assert resp.status_code == 405 and resp.headers["allow"] == "POST"
        assert client.get("/v1/elsewhere").status_code == 404  # other paths: FastAPI's


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    reads: list[int] = []

    async def receive() -> dict[str, object]:
        reads.append(1)
        return {"type": "http.request", "body": b"x", "more_body": False}

    routes = FastRoutes(create_app(Settings(service_name="fast-cl")).api, "fast-cl", [], 10)
    assert asyncio.run(routes._body(receive, b"11")) is None
    assert reads == []  # refused on the header alone
    assert asyncio.run(routes._body(receive, b"1")) == b"x"
