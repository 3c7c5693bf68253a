"""The admin token: every write and admin route of every service refuses a missing or wrong
token before it reads the body; reads and the stage calls stay open; the token's sources."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.platform.auth import AdminGuard, client_token, ensure_token_file, read_token
from shared.platform.settings import StartupError, load_settings
from tests.utils.auth import ADMIN

SERVICES = (
    "candidate_generation", "feature_store", "filtering", "ranking", "reranking", "gateway",
    "events", "ingest", "offline_sink", "rollouts",
)  # fmt: skip
# POSTs that read (a body too big for a query string) or that clients call: not admin actions.
NOT_ADMIN = {
    ("feature_store", "/v1/items/features"): "a read with a list of ids",
    ("events", "/v1/events"): "clients post events; CASCADE_EVENTS_REQUIRE_TOKEN protects it",
}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _app(service: str) -> TestClient:
    module = importlib.import_module(f"services.{service}.app")
    settings = load_settings(importlib.import_module(f"services.{service}.settings").Settings)
    return TestClient(module.build_app(settings))  # no `with`: the lifespan (models...) never runs


def _admin_routes(service: str) -> list[tuple[str, str]]:
    module = importlib.import_module(f"services.{service}.app")
    settings = load_settings(importlib.import_module(f"services.{service}.settings").Settings)
    app = module.build_app(settings)
    request_path = {r.path for r in app.fast_routes}  # the stage calls and the public answer
    return [
        (method.upper(), path)
        for path, operations in app.api.openapi()["paths"].items()
        if (service, path) not in NOT_ADMIN and path not in request_path
        for method in sorted(operations)
        if method.upper() in WRITES
    ]


ROUTES = [(s, m, p) for s in SERVICES for m, p in _admin_routes(s)]


def test_the_admin_routes_are_the_expected_ones() -> None:
    """A new write route lands here and in this test's list, or the test says so."""
    assert {(s, p) for s, _, p in ROUTES} == {
        ("candidate_generation", "/v1/items"),
        ("feature_store", "/v1/items"),
        ("rollouts", "/v1/rollouts"),
        ("rollouts", "/v1/rollouts/{rollout_id}/promote"),
        ("rollouts", "/v1/rollouts/{rollout_id}/resume"),
        ("rollouts", "/v1/rollouts/{rollout_id}/abort"),
        ("rollouts", "/v1/experiments"),
        ("rollouts", "/v1/experiments/{experiment_id}/stop"),
        ("rollouts", "/v1/experiments/{experiment_id}/weights"),
    }


@pytest.mark.parametrize(("service", "method", "path"), ROUTES)
def test_every_admin_route_refuses_a_missing_or_wrong_token(
    service: str, method: str, path: str
) -> None:
    client = _app(service)
    url = path.replace("{rollout_id}", "r1").replace("{experiment_id}", "e1")
    missing = client.request(method, url, content=b"not json")  # auth comes before the body
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    other = {"Authorization": "Bearer " + "x" * 40}
    wrong = client.request(method, url, content=b"{}", headers=other)
    assert wrong.status_code == 403 and "not this platform's admin token" in wrong.json()["detail"]
    right = client.request(method, url, content=b"not json", headers=ADMIN)
    assert right.status_code not in (401, 403), right.text  # on to the body (422) or the state


def test_reads_stay_open() -> None:
    client = _app("rollouts")
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_a_service_without_a_token_refuses_writes_and_says_how_to_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CASCADE_ADMIN_TOKEN")
    resp = _app("feature_store").post("/v1/items", json={"items": []}, headers=ADMIN)
    assert resp.status_code == 403
    assert "CASCADE_ADMIN_TOKEN or CASCADE_ADMIN_TOKEN_FILE" in resp.json()["detail"]


def test_events_refuse_a_missing_token_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """(The accepted side, against a real broker: tests/integration/test_events_api.py.)"""
    monkeypatch.setenv("CASCADE_EVENTS_REQUIRE_TOKEN", "true")
    assert _app("events").post("/v1/events", content=b"{}").status_code == 401


def test_the_token_file_wins_and_a_bad_file_stops_the_service(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0123456789abcdef\n")
    assert read_token(token_file, "value-token-0123456789") == "file-token-0123456789abcdef"
    assert read_token(None, "value-token-0123456789") == "value-token-0123456789"
    assert read_token(None, None) is None
    with pytest.raises(StartupError, match="no such file|No such file"):
        read_token(tmp_path / "missing", None)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(StartupError, match="is empty"):
        read_token(tmp_path / "empty", None)
    with pytest.raises(StartupError, match="at least 16 characters"):
        AdminGuard("short")


def test_guard_refusals() -> None:
    guard = AdminGuard("the-right-token-0123456789")
    assert guard.refusal("Bearer the-right-token-0123456789") is None
    assert guard.refusal("bearer  the-right-token-0123456789 ") is None
    assert guard.refusal(None) == (401, "this action needs 'Authorization: Bearer <admin token>'")
    assert guard.refusal("Basic the-right-token-0123456789")[0] == 401  # type: ignore[index]
    assert guard.refusal("Bearer the-right-token-012345678")[0] == 403  # type: ignore[index]
    assert not AdminGuard(None).configured


def test_the_local_runtime_token_file_is_private_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_token_file(tmp_path / "run" / "admin_token")
    token = path.read_text().strip()
    assert len(token) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert ensure_token_file(path).read_text().strip() == token  # a second `make up` keeps it
    monkeypatch.delenv("CASCADE_ADMIN_TOKEN")
    monkeypatch.setenv("CASCADE_ADMIN_TOKEN_FILE", str(path))
    assert client_token() == token
