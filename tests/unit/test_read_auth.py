"""The read token: with ``CASCADE_READ_TOKEN`` set, every read of every service (stage calls,
the public answer, GET routes, the feature store's POST read, the console's API) refuses a
missing or wrong token before anything else runs and takes the read or the admin token;
health and metrics stay open; writes keep the admin token's own answers; clients send it.
(On real processes, a whole stack with it on: tests/integration/test_read_token.py.)"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.console.console import Console
from services.console.settings import Settings as ConsoleSettings
from services.console.upstream import Answer
from shared.platform.auth import OPEN_PATHS, READ_HOW, ReadGuard, read_headers
from shared.platform.http_client import ServiceClient
from shared.platform.service import Service
from shared.platform.settings import StartupError, load_settings
from tests.utils.auth import ADMIN, READ, TEST_READ_TOKEN

SERVICES = (
    "candidate_generation", "feature_store", "filtering", "ranking", "reranking", "gateway",
    "events", "ingest", "offline_sink", "rollouts", "console",
)  # fmt: skip
POST_READS = {("feature_store", "/v1/items/features")}
WRONG = {"Authorization": "Bearer " + "w" * 40}


def _service(name: str) -> Service:
    settings = load_settings(importlib.import_module(f"services.{name}.settings").Settings)
    app: Service = importlib.import_module(f"services.{name}.app").build_app(settings)
    return app


@pytest.fixture
def protected(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reads protected, as ``CASCADE_READ_TOKEN`` does it for every service."""
    monkeypatch.setenv("CASCADE_READ_TOKEN", TEST_READ_TOKEN)
    yield


def _reads(app: Service) -> list[tuple[str, str]]:
    """Every (method, path) of the service's document that is a read, path params filled."""
    out = []
    for path, operations in app.api.openapi()["paths"].items():
        for method in operations:
            m = method.upper()
            if path in OPEN_PATHS:
                continue
            fast = any(r.method == m and r.path == path for r in app.fast_routes)
            if fast or m == "GET" or (m == "POST" and path in app.reads.read_posts):
                out.append((m, path.replace("{", "").replace("}", "")))
    return out


@pytest.mark.parametrize("service", SERVICES)
def test_every_read_needs_the_read_or_admin_token_when_configured(
    service: str, protected: None
) -> None:
    app = _service(service)
    reads = _reads(app)
    # no `with`: the lifespan (models, connections) never runs, so a read past the guard may
    # fail in its handler (a 500 here): what counts is that the guard let it through
    client = TestClient(app, raise_server_exceptions=False)
    for method, path in [*reads, ("GET", "/openapi.json")]:
        missing = client.request(method, path, content=b"{}")
        assert missing.status_code == 401, (method, path, missing.text)
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["detail"] == READ_HOW
        wrong = client.request(method, path, content=b"{}", headers=WRONG)
        assert wrong.status_code == 403, (method, path, wrong.text)
        for token in (READ, ADMIN):  # past the guard: the route's own answer
            passed = client.request(method, path, content=b"{}", headers=token)
            assert passed.status_code not in (401, 403), (method, path, passed.text)
    for path in sorted(OPEN_PATHS - {"/readyz"}):
        assert client.get(path).status_code == 200, path  # probes and scrapers carry no token
    assert client.get("/readyz").status_code in (200, 503)  # open: the answer is readiness


def test_the_reads_walked_are_the_expected_ones(protected: None) -> None:
    """A service's reads come from its document: a route type the walk misses lands here."""
    walked = {s: _reads(_service(s)) for s in SERVICES}
    assert ("POST", "/v1/recommendations") not in walked["gateway"]
    assert ("GET", "/v1/recommendations") in walked["gateway"]
    assert {(s, p) for s, reads in walked.items() for m, p in reads if m == "POST"} == {
        *POST_READS,
        ("filtering", "/v1/filter"), ("ranking", "/v1/rank"), ("reranking", "/v1/rerank"),
        ("candidate_generation", "/v1/candidates"),
    }  # fmt: skip
    assert ("GET", "/api/health") in walked["console"]
    assert ("GET", "/v1/rollouts/rollout_id/history") in walked["rollouts"]


def test_writes_keep_the_admin_tokens_answers(protected: None) -> None:
    client = TestClient(_service("feature_store"))
    missing = client.post("/v1/items", content=b"{}")
    assert missing.status_code == 401 and "admin token" in missing.json()["detail"]
    reader = client.post("/v1/items", content=b"{}", headers=READ)
    assert reader.status_code == 403  # the read token does not write
    events_api = TestClient(_service("events"), raise_server_exceptions=False)
    events = events_api.post("/v1/events", content=b"{}")
    assert events.status_code not in (401, 403)  # clients post events (a write, not a read)


def test_the_console_page_loads_without_a_token(protected: None) -> None:
    client = TestClient(_service("console"))
    assert client.get("/").status_code == 200
    assert client.get("/static/common.js").status_code == 200
    assert client.get("/api/health").status_code == 401


def test_reads_are_open_without_a_read_token() -> None:
    client = TestClient(_service("feature_store"))
    document = client.get("/openapi.json")
    assert document.status_code == 200
    assert "401" not in document.json()["paths"]["/v1/trending"]["get"]["responses"]
    filtering = TestClient(_service("filtering"))
    assert filtering.post("/v1/filter", content=b"{}").status_code not in (401, 403)


def test_the_document_declares_the_refusals_of_reads_when_configured(protected: None) -> None:
    paths = _service("feature_store").api.openapi()["paths"]
    assert {"401", "403"} <= set(paths["/v1/trending"]["get"]["responses"])
    assert {"401", "403"} <= set(paths["/v1/items/features"]["post"]["responses"])
    assert "401" not in paths["/healthz"]["get"]["responses"]
    stage = _service("filtering").api.openapi()["paths"]["/v1/filter"]["post"]["responses"]
    assert {"401", "403"} <= set(stage)


def test_read_guard_refusals() -> None:
    guard = ReadGuard(TEST_READ_TOKEN, "the-admin-token-0123456789")
    assert guard.configured
    assert guard.refusal(f"Bearer {TEST_READ_TOKEN}") is None
    assert guard.refusal("bearer the-admin-token-0123456789") is None  # the admin token reads
    assert guard.refusal(None) == (401, READ_HOW)
    assert guard.refusal(f"Basic {TEST_READ_TOKEN}") == (401, READ_HOW)
    assert guard.refusal(f"Bearer {TEST_READ_TOKEN[:-1]}")[0] == 403  # type: ignore[index]
    open_reads = ReadGuard(None, "the-admin-token-0123456789")
    assert not open_reads.configured and open_reads.refusal(None) is None
    with pytest.raises(StartupError, match="read token must have at least 16"):
        ReadGuard("short")


def test_a_read_token_file_wins_and_a_missing_one_stops_the_service(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "read_token"
    token_file.write_text("from-the-file-0123456789\n")
    monkeypatch.setenv("CASCADE_READ_TOKEN", TEST_READ_TOKEN)
    monkeypatch.setenv("CASCADE_READ_TOKEN_FILE", str(token_file))
    client = TestClient(_service("filtering"))
    assert client.post("/v1/filter", headers=READ).status_code == 403
    ok = client.post("/v1/filter", headers={"Authorization": "Bearer from-the-file-0123456789"})
    assert ok.status_code not in (401, 403)
    assert read_headers() == {"Authorization": "Bearer from-the-file-0123456789"}
    monkeypatch.setenv("CASCADE_READ_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(StartupError, match="read token file"):
        _service("filtering")


def test_a_client_sends_its_token_unless_the_call_brings_its_own() -> None:
    client = ServiceClient("x", "http://127.0.0.1:1", token=TEST_READ_TOKEN)
    head = client._head("GET", "/v1/a", None, "", {"X-Request-ID": "r"})
    assert f"Authorization: Bearer {TEST_READ_TOKEN}\r\n".encode() in head
    own = client._head("POST", "/v1/a", b"{}", "application/json", {"Authorization": "Bearer b"})
    assert own.count(b"Authorization") == 1 and b"Bearer b" in own
    assert b"Authorization" not in ServiceClient("y", "http://127.0.0.1:1")._head(
        "GET", "/", None, "", None
    )


async def test_the_console_reads_with_its_token_and_writes_with_the_callers(
    protected: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = Console(load_settings(ConsoleSettings))
    sent: list[dict[str, str] | None] = []

    async def call(*_: Any, headers: dict[str, str] | None = None, **__: Any) -> Answer:
        sent.append(headers)
        return Answer(200, {}, b"{}", 0.0)

    monkeypatch.setattr(console.upstreams.get("rollouts"), "call", call)
    await console.forward("rollouts", "GET", "/v1/rollouts")
    await console.forward("rollouts", "POST", "/v1/rollouts/r/abort", {})
    await console.forward("rollouts", "POST", "/v1/rollouts/r/abort", {}, "Bearer typed")
    await console.aclose()
    assert sent == [READ, None, {"Authorization": "Bearer typed"}]
