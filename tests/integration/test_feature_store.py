"""The feature_store service and the bootstrap job as real processes against a real Redis (and,
where a test has a ``[cluster]`` case, a real Redis Cluster of three primaries)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import free_port
from shared.events import Event
from shared.online_store import ItemRecord, UserProfile, keys
from shared.online_store.config import StoreConfig
from shared.online_store.writer import StoreWriter
from tests.conftest import ServiceStarter
from tests.utils.auth import ADMIN
from tests.utils.servers import REPO_ROOT
from tests.utils.stores import STORE_KINDS, StoreTarget, store_target

pytestmark = pytest.mark.integration
DB = 7  # a database of its own: other suites flush db 0


@pytest.fixture
def target(request: pytest.FixtureRequest) -> StoreTarget:
    """Database DB of the session's Redis, or (``indirect`` parameter) its Redis Cluster."""
    return store_target(request, getattr(request, "param", "node"), DB)


@pytest.fixture
def service(target: StoreTarget, start_service: ServiceStarter) -> str:
    client = target.flushed()
    now = time.time()
    writer = StoreWriter(client)
    writer.put_items([ItemRecord("m1", "One", ("Comedy",), 1995, now - 10), ItemRecord("m2")])
    writer.put_users([UserProfile("u1", age=40, gender="M")])
    writer.apply_events(
        [
            Event(event_id=f"e{k}", user_id="u1", item_id="m1", type="click", timestamp=now - 5)
            for k in range(3)
        ]
        + [Event(event_id="h", user_id="u1", item_id="m2", type="hide", timestamp=now - 1)]
    )
    client.close()
    return start_service("feature_store", env=target.env(), require_ready=True)


@pytest.mark.parametrize("target", STORE_KINDS, indirect=True)
def test_user_and_item_features(service: str) -> None:
    user = httpx.get(f"{service}/v1/users/u1/features").json()
    assert user["known"] and user["segment"] == "35-44|m" and user["blocked"] == ["m2"]
    assert user["features"]["history"] == ["m1"] and user["features"]["n_events"] == 3
    assert not httpx.get(f"{service}/v1/users/ghost/features").json()["known"]
    items = httpx.post(f"{service}/v1/items/features", json={"item_ids": ["m1", "zz", "m2"]})
    body = items.json()
    assert items.status_code == 200 and body["found"] == [True, False, True]
    assert body["count_1h"] == [3.0, 0.0, 0.0] and body["genres"][0] == ["Comedy"]
    assert len(body["ctr"]) == 3


@pytest.mark.parametrize("target", STORE_KINDS, indirect=True)
def test_add_item_then_fresh_and_candidate_lists(service: str) -> None:
    resp = httpx.post(
        f"{service}/v1/items",
        json={"items": [{"item_id": "new1", "genres": ["Drama"], "regions": ["US"]}]},
        headers=ADMIN,
    )
    assert resp.status_code == 201 and resp.json() == {"added": ["new1"]}
    fresh = httpx.get(f"{service}/v1/fresh", params={"k": 1, "max_age_s": 60}).json()
    assert fresh["items"][0]["item_id"] == "new1"
    body = httpx.post(f"{service}/v1/items/features", json={"item_ids": ["new1"]}).json()
    assert body["found"] == [True] and body["regions"] == [["US"]]
    assert (
        httpx.get(f"{service}/v1/trending", params={"k": 5}).json()["items"][0]["item_id"] == "m1"
    )
    popular = httpx.get(f"{service}/v1/popular", params={"segment": "35-44|m"}).json()
    assert [i["item_id"] for i in popular["items"]] == ["m1"]  # 3 clicks 5 s ago, decayed
    assert popular["items"][0]["score"] == pytest.approx(3.0, rel=1e-4)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/items/features", {"item_ids": []}, "item_ids"),
        ("POST", "/v1/items/features", {"item_ids": "m1"}, "item_ids"),
        ("POST", "/v1/items/features", {"item_ids": ["m1"], "extra": 1}, "extra"),
        ("POST", "/v1/items/features", {"item_ids": [f"i{k}" for k in range(2001)]}, "item_ids"),
        ("POST", "/v1/items/features", {"item_ids": ["a b"]}, "item_ids"),
        ("GET", "/v1/users/a%20b/features", None, "user_id"),
        ("GET", "/v1/users/u1/features?now=-5", None, "now"),
        ("GET", "/v1/trending?k=0", None, "k"),
        ("GET", "/v1/fresh?max_age_s=abc", None, "max_age_s"),
        ("POST", "/v1/items", {"items": [{"item_id": "x", "release_year": 3000}]}, "release_year"),
        ("POST", "/v1/items", {"items": []}, "items"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    service: str, method: str, path: str, body: object, field: str
) -> None:
    resp = httpx.request(method, f"{service}{path}", json=body, headers=ADMIN)
    assert resp.status_code == 422, resp.text
    assert any(field in map(str, err["loc"]) for err in resp.json()["detail"]), resp.text


def test_dead_redis_is_503_not_500(start_service: ServiceStarter) -> None:
    base = start_service(
        "feature_store", env={"CASCADE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    )
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 503 and not ready.json()["checks"]["redis"]["ok"]
    resp = httpx.post(f"{base}/v1/items/features", json={"item_ids": ["m1"]}, timeout=5)
    assert resp.status_code == 503 and "redis" in resp.json()["detail"]


def _tiny_movielens(root: Path) -> None:
    """Three items, two users, four ratings in the GroupLens layout."""
    root.mkdir()
    flags = ["0"] * 19
    rows = []
    for item, title, genre in ((1, "A (1995)", 5), (2, "B (1990)", 8), (3, "C (1980)", 1)):
        f = list(flags)
        f[genre] = "1"
        rows.append("|".join([str(item), title, "01-Jan-1995", "", "http://x", *f]))
    (root / "u.item").write_text("\n".join(rows) + "\n", encoding="latin-1")
    (root / "u.user").write_text("1|24|M|student|12345\n2|50|F|writer|54321\n")
    (root / "u.data").write_text(
        "1\t1\t5\t880000000\n1\t2\t3\t880000100\n2\t1\t4\t880000200\n2\t3\t2\t890000000\n"
    )


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_bootstrap_job_loads_catalog_profiles_and_history(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path
) -> None:
    target = store_target(request, kind, DB + 1)
    client = target.flushed()
    data = tmp_path / "ml"
    _tiny_movielens(data)
    cmd = [
        sys.executable,
        "-m",
        "services.feature_store.bootstrap",
        "--data",
        str(data),
        "--redis-url",
        target.url,
        *(["--redis-cluster"] if target.cluster else []),
    ]
    for _ in range(2):  # a second run counts nothing twice
        out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    assert "3 items, 2 users, 4 rating events (0 newly applied)" in out.stdout
    reset = subprocess.run([*cmd, "--reset"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "(4 newly applied)" in reset.stdout, reset.stderr  # every key, marks too, deleted
    assert client.scard(keys.CATALOG_IDS) == 3
    assert client.hget(b"{u:1}:h", b"seg") == b"18-24|m"
    assert client.zrange(b"{u:1}:histz", 0, -1) == [b"1", b"2"]  # by first interaction
    # item 1: rated at 880000000 and 880000200 (weight 1 each), read as of the second rating
    ref = float(client.hget(keys.SEGMENT_REFS, b"all"))
    stored = client.zscore(keys.segment_popularity("all"), b"1")
    at = stored * 2 ** ((ref - 880_000_200) / StoreConfig().segment_half_life_s)
    assert at == pytest.approx(1 + 2 ** (-200 / StoreConfig().segment_half_life_s))
    bad = subprocess.run(
        [*cmd[:4], str(tmp_path / "missing"), *cmd[5:]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "not found" in bad.stderr
    client.close()


def test_catalog_writes_need_the_token_from_the_secret_file(
    start_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "admin_token"
    secret.write_text("mounted-secret-token-0123456789\n")
    env = {"CASCADE_REDIS_URL": redis_url, "CASCADE_ADMIN_TOKEN_FILE": str(secret)}
    base = start_service("feature_store", env=env)
    item = {"items": [{"item_id": f"auth-{uuid.uuid4().hex[:6]}", "genres": ["Drama"]}]}
    missing = httpx.post(f"{base}/v1/items", json=item, timeout=5)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    env_token = httpx.post(f"{base}/v1/items", json=item, headers=ADMIN, timeout=5)
    assert env_token.status_code == 403  # the file wins over CASCADE_ADMIN_TOKEN
    good = {"Authorization": "Bearer mounted-secret-token-0123456789"}
    assert httpx.post(f"{base}/v1/items", json=item, headers=good, timeout=5).status_code == 201
    assert httpx.post(f"{base}/v1/items/features", json={"item_ids": ["m1"]}).status_code == 200
