"""The serving path for real: Redis, the Kafka-protocol broker, MLflow, the four stage services
and two gateways as processes, on models trained by the real pipeline and loaded from the
MLflow alias ``production``; HTTP from outside like any client.

One module on purpose: the trained models and the running stack are expensive, and module
scope shares them between every test here. Tests that break a process (SIGSTOP, SIGKILL)
restore it before they end, so their order does not matter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from deploy.local.processes import free_port, start, stop, wait_ready
from loadtests.serving_stack import service_spec
from shared.events import Event
from shared.online_store import keys
from shared.online_store.types import UserProfile
from shared.online_store.writer import StoreWriter
from tests.integration.serving_fixtures import LiveStack, set_production, wait_serving, write_budget
from tests.utils.auth import ADMIN
from tests.utils.delay_proxy import gateway_with_slow_stage
from tests.utils.metrics import scrape

pytestmark = pytest.mark.integration

STAGES = ("user_features", "candidates", "item_features", "filtering", "ranking", "reranking")
SERVICE_STAGE = {  # process -> the stage name its failure shows up under
    "candidate_generation": "candidates",
    "filtering": "filtering",
    "ranking": "ranking",
    "reranking": "reranking",
}


@pytest.fixture(scope="module", autouse=True)
def session_bundle_in_production(
    live_stack: LiveStack, registered_models: dict[str, str], mlflow_tracking_uri: str
) -> None:
    """The session stack serves the session's bundle: modules that ran before may have moved the
    registry's production alias (and the browser tests started this stack before they did)."""
    set_production(mlflow_tracking_uri, registered_models)
    wait_serving(live_stack, registered_models)


def whole(resp: httpx.Response) -> dict[str, Any]:
    """The body of a 200 answer that no stage degraded."""
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["degraded"] is False, body["degraded_reasons"]
    return body


def eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll ``check`` until it holds (recovery after a fault is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def _is_whole(stack: LiveStack) -> bool:
    resp = stack.recommend(user_id="2", k=10)
    return resp.status_code == 200 and not resp.json()["degraded"]


def _store(stack: LiveStack) -> redis.Redis:
    return redis.Redis.from_url(stack.env["CASCADE_REDIS_URL"])


# ---- the whole path -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def response_schema(live_stack: LiveStack) -> dict[str, Any]:
    """The answer's JSON schema as the gateway's OpenAPI document declares it."""
    doc = httpx.get(f"{live_stack.url()}/openapi.json").json()
    op = doc["paths"]["/v1/recommendations"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]
    return {**ref, "components": doc["components"]}


@pytest.mark.parametrize("gateway", ["gateway", "gateway_in_process"])
def test_request_through_every_stage(
    live_stack: LiveStack,
    registered_models: dict[str, str],
    response_schema: dict[str, Any],
    gateway: str,
) -> None:
    import jsonschema

    resp = live_stack.recommend(gateway, user_id="1", k=10, explain="true")
    body = whole(resp)
    jsonschema.validate(body, response_schema)  # the declared contract holds
    assert body["variant"] == "production"
    for item in body["items"]:  # a person can read what was recommended
        assert item["title"] and item["genres"] and item["year"] and 1900 < item["year"] < 2000
    items = [i["item_id"] for i in body["items"]]
    assert len(items) == 10 == len(set(items)) and body["cold_start"] == "returning"
    assert body["request_id"] == resp.headers["x-request-id"]
    seen = {m.decode() for m in _store(live_stack).zrange("{u:1}:seenz", 0, -1)}
    assert seen and not set(items) & seen  # the seen filter ran on the real user state
    timing = resp.headers["server-timing"]
    for stage in STAGES:
        assert f"{stage};dur=" in timing
    assert "total;dur=" in timing
    assert body["model_versions"] == {
        part: f"cascade-{part.replace('_', '-')}/"
        f"{registered_models['cascade-' + part.replace('_', '-')]} (@production)"
        for part in ("user_tower", "item_index", "ranker")
    }
    trace = body["explain"]
    assert [t["item_id"] for t in trace["items"]] == items
    for t in trace["items"]:
        assert t["sources"] and set(t["heads"]) == {"p_interact", "p_like"}
        assert t["filters_passed"][0] == "age_restricted" and "seen" in t["filters_passed"]
        assert {"fatigue", "freshness", "mmr_redundancy"} <= set(t["rerank"])
        assert 0 < t["propensity"] <= 1
    assert trace["removed_counts"]["seen"] > 0
    assert {"two_tower", "item_to_item", "trending", "segment_popular"} <= set(trace["sources"])


def test_stage_services_load_from_the_mlflow_alias(
    live_stack: LiveStack, registered_models: dict[str, str], trained_models: Path
) -> None:
    for name, check, parts in (
        ("ranking", "models", ["ranker"]),
        ("reranking", "models", ["item_index"]),
        ("candidate_generation", "models", ["user_tower", "item_index"]),
        ("gateway_in_process", "models_retrieval", ["user_tower", "item_index"]),
        ("gateway_in_process", "models_ranker", ["ranker"]),
    ):
        ready = httpx.get(f"{live_stack.url(name)}/readyz").json()
        assert ready["ready"] is True
        reason = ready["checks"][check]["reason"]
        for part in parts:
            registered = f"cascade-{part.replace('_', '-')}"
            assert f"{registered}/{registered_models[registered]} (@production)" in reason
    # The ranker runs with int8 weights when training shipped them (their top-10 agreed).
    export = orjson.loads((trained_models / "manifest.json").read_bytes())["export"]
    shipped = export["ranker_int8_shipped"] == 1.0
    assert shipped == (trained_models / "ranker" / "ranker_int8.onnx").is_file()
    reason = httpx.get(f"{live_stack.url('ranking')}/readyz").json()["checks"]["models"]["reason"]
    assert f"({'ranker_int8.onnx' if shipped else 'ranker.onnx'})" in reason
    gateway = httpx.get(f"{live_stack.url()}/readyz").json()["checks"]["warm_up"]
    assert gateway["ok"] and gateway["reason"].startswith("ok: every stage answered")


def test_a_followed_alias_is_held_once_the_registry_has_it(
    registered_models: dict[str, str], live_stack: LiveStack, mlflow_tracking_uri: str
) -> None:
    """A ranking service that follows an alias the registry does not have yet is ready (it
    serves production) and says the alias has no version; once the alias is set it loads
    that version (schema-checked and warmed up) and holds it beside production."""
    from mlflow.tracking import MlflowClient

    alias = f"candidate-{uuid.uuid4().hex[:8]}"
    env = {**live_stack.env, "CASCADE_MODEL_ALIASES": f"production,{alias}",
           "CASCADE_MODEL_POLL_S": "1"}  # fmt: skip
    proc = start(service_spec("ranking", env, f"ranking-{alias}"), live_stack.log_dir)
    try:
        base = proc.spec.url
        eventually(lambda: f"{alias}: none" in _models_reason(base), 60)
        assert _status(f"{base}/readyz") == 200  # production is served meanwhile
        client = MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)
        version = registered_models["cascade-ranker"]
        client.set_registered_model_alias("cascade-ranker", alias, version)
        eventually(lambda: f"cascade-ranker/{version} (@{alias})" in _models_reason(base), 60)
        held = {k for k, v in scrape(base).items() if k.startswith("cascade_models_held") and v}
        assert any(f"alias={alias}," in k and f"cascade-ranker/{version}" in k for k in held)
        assert any("alias=production," in k for k in held)
    finally:
        stop(proc)


def _models_reason(base: str) -> str:
    try:
        return str(httpx.get(f"{base}/readyz", timeout=2).json()["checks"]["models"]["reason"])
    except httpx.HTTPError:
        return ""


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_first_requests_after_ready_are_whole(live_stack: LiveStack, tmp_path: Path) -> None:
    """A fresh gateway with tight deadlines: once /readyz says ready, the very first requests
    are served whole (cold connections and caches were warmed before, not on them)."""
    env = {**live_stack.env, "CASCADE_LATENCY_BUDGET": str(write_budget(tmp_path / "b.yaml", 80))}
    for name in SERVICE_STAGE:
        env[f"CASCADE_GATEWAY_{name.upper()}_URL"] = live_stack.url(name)
    proc = start(service_spec("gateway", env, "gateway-fresh"), live_stack.log_dir)
    try:
        eventually(lambda: _status(f"{proc.spec.url}/readyz") == 200, 60)
        for user in ("3", "4", "5"):
            resp = httpx.get(f"{proc.spec.url}/v1/recommendations", params={"user_id": user})
            whole(resp)
    finally:
        stop(proc)


def test_a_stage_url_pointing_at_the_wrong_service_shows_in_readiness(
    live_stack: LiveStack,
) -> None:
    """Swapped stage URLs are a misconfiguration the gateway names, not a silent fallback."""
    env = {**live_stack.env, "CASCADE_GATEWAY_WARMUP_GIVE_UP_S": "0"}
    for name in SERVICE_STAGE:
        env[f"CASCADE_GATEWAY_{name.upper()}_URL"] = live_stack.url(name)
    env["CASCADE_GATEWAY_CANDIDATE_GENERATION_URL"] = live_stack.url("filtering")
    proc = start(service_spec("gateway", env, "gateway-miswired"), live_stack.log_dir)
    try:
        eventually(lambda: _status(f"{proc.spec.url}/readyz") in (200, 503), 60)
        checks = httpx.get(f"{proc.spec.url}/readyz", timeout=5).json()["checks"]
        assert checks["filtering"]["ok"] is True
        assert checks["candidate_generation"]["ok"] is False
        reason = checks["candidate_generation"]["reason"]
        assert reason == f"{live_stack.url('filtering')} is filtering, not candidate_generation"
    finally:
        stop(proc)


# ---- variants: two models side by side in one process --------------------------------------


@pytest.fixture(scope="module")
def canary_ranker(
    registered_models: dict[str, str], mlflow_tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, str]:  # fmt: skip
    """Another ranker (a small linear model, not the trained one) registered as a new version
    of cascade-ranker behind an alias of its own; (alias, version)."""
    from tests.integration.serving_fixtures import catalog, write_synthetic_bundle
    from training.registry import log_and_register

    alias = f"canary-{uuid.uuid4().hex[:6]}"
    bundle = write_synthetic_bundle(tmp_path_factory.mktemp("canary"), catalog(50), "canary-1")
    got = log_and_register({"ranker": bundle / "ranker"}, [], {}, {}, {"bundle_id": "canary-1"},
                           mlflow_tracking_uri, alias)  # fmt: skip
    return alias, got["cascade-ranker"]


# One clock for every ranking call: the ranker's inputs include the time of day and recency, so
# the float32 ranker's scores move (by about 1e-5) between calls made a second apart.
RANK_NOW = time.time()


def _rank(base: str, variant: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """POST /v1/rank in JSON for a returning user over ``items``; the answer (or a 503)."""
    n = len(items)
    body = {
        "context": {"request_id": "t", "now": RANK_NOW, "variant": variant,
                    "user": {"user_id": "1", "known": True, "history": ["1", "2"]}},
        "frame": {"ids": items, "columns": {
            "genre_mask": [1 << (i % 18 + 1) for i in range(n)],
            "release_year": [1990.0 + i % 9 for i in range(n)],
            "counts": [[1.0, 2.0, 5.0, 10.0 + i] for i in range(n)],
            "like_count": [float(i % 5) for i in range(n)],
            "rating_count": [10.0 + i for i in range(n)],
            "ease_score": [0.01 * (i % 7) for i in range(n)],
        }},
    }  # fmt: skip
    resp = httpx.post(f"{base}/v1/rank", json=body, timeout=10)
    return {"status": resp.status_code, **resp.json()}


def test_one_ranking_process_serves_two_variants_side_by_side(
    live_stack: LiveStack, canary_ranker: tuple[str, str], registered_models: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    """The same ranking process scores one request with production's ranker and the next with
    the canary's (loaded on first ask, beside production), each with its own model's scores;
    through a gateway, the variant shows in the answer."""
    alias, version = canary_ranker
    base, items = live_stack.url("ranking"), [str(i) for i in range(1, 41)]
    canary = {"name": "ranker-canary", "models": {"ranker": alias}}
    eventually(lambda: _rank(base, canary, items)["status"] == 200, 60)  # 503 while loading
    prod, cand = _rank(base, {}, items), _rank(base, canary, items)
    assert (
        prod["info"]["model"]
        == f"cascade-ranker/{registered_models['cascade-ranker']} (@production)"
    )
    assert cand["info"]["model"] == f"cascade-ranker/{version} (@{alias})"
    import numpy as np

    p_score, c_score = (np.array(r["frame"]["columns"]["score"]) for r in (prod, cand))
    assert not np.allclose(p_score, c_score, atol=1e-3)  # another model, other scores
    again = np.array(_rank(base, {}, items)["frame"]["columns"]["score"])
    np.testing.assert_allclose(again, p_score, rtol=1e-5, atol=1e-6)  # production: still its own
    # A variant naming a model the registry does not have: refused with the reason (a 503
    # while the service looks it up, then a 422), and production goes on being served.
    missing = {"name": "x", "models": {"ranker": "no-such-alias"}}
    eventually(lambda: _rank(base, missing, items)["status"] == 422, 30)
    refused = _rank(base, missing, items)
    assert refused["detail"][0]["loc"] == ["body", "context", "variant", "models", "ranker"]
    assert "no-such-alias" in refused["detail"][0]["msg"]
    assert _rank(base, {}, items)["status"] == 200
    # Through a gateway whose variants file declares the canary: same process, two answers.
    variants = tmp_path / "variants.yaml"
    variants.write_text(f"variants:\n  ranker-canary:\n    models: {{ranker: {alias}}}\n")
    env = {**live_stack.env, "CASCADE_GATEWAY_VARIANTS": str(variants)}
    for name in SERVICE_STAGE:
        env[f"CASCADE_GATEWAY_{name.upper()}_URL"] = live_stack.url(name)
    proc = start(service_spec("gateway", env, "gateway-variants"), live_stack.log_dir)
    try:
        eventually(lambda: _status(f"{proc.spec.url}/readyz") == 200, 60)
        url = f"{proc.spec.url}/v1/recommendations"
        a = whole(httpx.get(url, params={"user_id": "1", "k": 10}))
        b = whole(httpx.get(url, params={"user_id": "1", "k": 10, "variant": "ranker-canary"}))
        assert (a["variant"], b["variant"]) == ("production", "ranker-canary")
        assert a["model_versions"]["ranker"].endswith("(@production)")
        assert b["model_versions"]["ranker"] == f"cascade-ranker/{version} (@{alias})"
        assert a["model_versions"]["item_index"] == b["model_versions"]["item_index"]
        assert [i["score"] for i in a["items"]] != [i["score"] for i in b["items"]]
    finally:
        stop(proc)


def test_a_stage_refuses_a_bad_body_with_a_422_naming_the_field(live_stack: LiveStack) -> None:
    """Over MessagePack (the gateway's encoding) and JSON alike, never a 500."""
    import numpy as np

    from services.ranking.stage import RankingStage
    from shared.frame import Frame
    from shared.pipeline.context import RequestContext, UserContext
    from shared.pipeline.stage import StageCodec

    codec = StageCodec(RankingStage(None))
    cols = {"genre_mask": np.ones(3, np.int64), "release_year": np.full(3, 1990.0),
            "counts": np.ones((3, 4)), "like_count": np.array([1.0, np.nan, 2.0]),
            "rating_count": np.ones(3), "ease_score": np.zeros(3, np.float32)}  # fmt: skip
    ctx = RequestContext("t", time.time(), UserContext("1"))
    body = codec.encode_request(ctx, Frame(["1", "2", "3"], cols))
    headers = {"content-type": "application/x-msgpack"}
    resp = httpx.post(f"{live_stack.url('ranking')}/v1/rank", content=body, headers=headers)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "frame", "columns", "like_count"]
    assert "NaN" in resp.json()["detail"][0]["msg"]
    short = {"context": {"request_id": "t", "now": 1.0, "user": {"user_id": "1"}},
             "frame": {"ids": ["1", "2"], "columns": {"like_count": [1.0]}}}  # fmt: skip
    resp = httpx.post(f"{live_stack.url('ranking')}/v1/rank", json=short)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "frame", "columns", "like_count"]


# ---- the wiring of the declared components --------------------------------------------------

PLUGIN = "tests.fixtures.plugins.odd_id_filter:OddIdFilter"
MISWIRED = "tests.fixtures.plugins.needs_missing_column:NeedsMissingColumn"


@pytest.mark.parametrize("service", ["filtering", "gateway"])
def test_the_wiring_check_stops_a_service_with_a_missing_column(
    live_stack: LiveStack, service: str
) -> None:
    env = {**os.environ, **live_stack.env, "CASCADE_PLUGINS": MISWIRED}
    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if "needs column" in line]
    assert lines == [
        f"{service}: filtering: NeedsMissingColumn 'needs_missing' needs column "
        f"'no_such_column', which nothing before it provides (available: "
        + lines[0].split("(available: ", 1)[1]
    ], run.stderr[-2000:]


def test_a_filter_added_as_one_file_runs_in_both_modes(live_stack: LiveStack) -> None:
    """A filter class in its own file, named in CASCADE_PLUGINS: the filtering service and the
    in-process gateway both run it, and the gateway sends the column it declared it needs. A
    services-mode gateway with ``filtering_in_gateway`` runs it too, without the filtering
    service (its URL points where nothing listens, and readiness does not ask for it)."""
    env = {**live_stack.env, "CASCADE_PLUGINS": PLUGIN}
    filtering = start(service_spec("filtering", env, "filtering-plugin"), live_stack.log_dir)
    gateways = []
    try:
        wait_ready(filtering)
        urls = {f"CASCADE_GATEWAY_{n.upper()}_URL": live_stack.url(n) for n in SERVICE_STAGE}
        genv = {**env, **urls, "CASCADE_GATEWAY_FILTERING_URL": filtering.spec.url}
        nowhere = f"http://127.0.0.1:{free_port()}"
        gateways = [
            start(service_spec("gateway", genv, "gateway-plugin"), live_stack.log_dir),
            start(service_spec("gateway", {**genv, "CASCADE_GATEWAY_MODE": "in_process"},
                               "gateway-plugin-in-process"), live_stack.log_dir),
            start(service_spec("gateway", {**genv, "CASCADE_GATEWAY_FILTERING_IN_GATEWAY": "true",
                                           "CASCADE_GATEWAY_FILTERING_URL": nowhere},
                               "gateway-plugin-filtering-here"), live_stack.log_dir),
        ]  # fmt: skip
        for gw in gateways:
            wait_ready(gw)
            checks = httpx.get(f"{gw.spec.url}/readyz", timeout=5).json()["checks"]
            assert ("filtering" in checks) is (gw is gateways[0]), (gw.spec.label, checks)
            params = {"user_id": "1", "k": 20, "explain": "true"}
            body = whole(httpx.get(f"{gw.spec.url}/v1/recommendations", params=params))
            ids = [i["item_id"] for i in body["items"]]
            assert ids and all(int(i) % 2 == 0 for i in ids), (gw.spec.label, ids)
            trace = body["explain"]
            assert trace["removed_counts"]["odd_id"] > 0
            assert trace["items"][0]["filters_passed"][-1] == "odd_id"
    finally:
        for proc in [*gateways, filtering]:
            stop(proc)


# ---- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"user_id": "1", "k": "0"}, "k", "greater than or equal to 1"),
        ({"user_id": "1", "k": "101"}, "k", "less than or equal to 100"),
        ({"user_id": "1", "k": "ten"}, "k", "valid integer"),
        ({"user_id": "not a valid id!"}, "user_id", "should match pattern"),
        ({"user_id": "x" * 65}, "user_id", "should match pattern"),
        ({"k": "5"}, "user_id", "Field required"),
        ({"user_id": "1", "colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"user_id": "1", "explain": "perhaps"}, "explain", "valid boolean"),
    ],
)
def test_bad_input_is_a_422_naming_the_problem(
    live_stack: LiveStack, params: dict[str, str], field: str, words: str
) -> None:
    resp = live_stack.recommend(**params)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert any(d["loc"][-1] == field and words in d["msg"] for d in detail), detail


# ---- cold start -----------------------------------------------------------------------------


def test_new_user_with_a_profile_is_served_by_the_user_tower(live_stack: LiveStack) -> None:
    client = _store(live_stack)
    StoreWriter(client).put_users(
        [UserProfile("newbie", age=24, gender="F", occupation="writer", zip_code="02139")]
    )
    body = whole(live_stack.recommend(user_id="newbie", k=10, explain="true"))
    assert body["cold_start"] == "new_user" and len(body["items"]) == 10
    sources = body["explain"]["sources"]
    assert sources["two_tower"]["n"] > 0 and sources["item_to_item"]["n"] == 0  # no history
    assert any("two_tower" in t["sources"] for t in body["explain"]["items"])


def test_unknown_user_gets_segment_popular_and_trending(live_stack: LiveStack) -> None:
    body = whole(
        live_stack.recommend(user_id=f"stranger-{uuid.uuid4().hex[:6]}", k=10, explain="true")
    )
    assert body["cold_start"] == "unknown_user" and len(body["items"]) == 10
    sources = body["explain"]["sources"]
    assert set(sources) == {"fresh_items", "segment_popular", "trending"}
    assert sources["segment_popular"]["n"] > 0 and sources["trending"]["n"] > 0


def test_new_item_is_indexed_at_once_and_served(live_stack: LiveStack) -> None:
    item_id = f"new-{uuid.uuid4().hex[:8]}"
    cg = live_stack.url("candidate_generation")

    def synced_by_reranking() -> float:
        counters = scrape(live_stack.url("reranking"))
        return counters.get("cascade_index_items_added_total{way=sync}", 0.0)

    before = synced_by_reranking()
    resp = httpx.post(
        f"{cg}/v1/items",
        json={
            "item_id": item_id,
            "title": "Brand new",
            "genres": ["Animation", "Children's"],
            "release_year": 1999,
        },
        headers=ADMIN,
    )
    assert resp.status_code == 201 and resp.json()["indexed"] is True
    # A user whose only interaction is the new item: item-to-item can only find neighbours
    # if the item's embedding is in the ANN index already.
    fan = f"fan-{item_id}"
    StoreWriter(_store(live_stack)).apply_events(
        [
            Event(
                event_id=f"e-{fan}",
                user_id=fan,
                item_id=item_id,
                type="click",
                timestamp=time.time(),
            )
        ]
    )
    fan_ctx = {"user_id": fan, "known": True, "history": [item_id]}
    cands = _candidates(cg, fan_ctx)
    assert cands["info"]["sources"]["item_to_item"][0] > 0, cands["info"]
    # The catalog knows it too: the fresh-items source offers it to a user never seen before.
    assert item_id in _candidates(cg, {"user_id": "nobody"})["frame"]["ids"]
    body = whole(live_stack.recommend(user_id=f"stranger-{item_id}", k=100, explain="true"))
    served = {t["item_id"]: t for t in body["explain"]["items"]}
    assert item_id in served and "fresh_items" in served[item_id]["sources"]
    # The in-process gateway has its own index: its sync loop embeds the catalog addition.
    eventually(
        lambda: (
            whole(live_stack.recommend("gateway_in_process", user_id=fan, explain="true"))[
                "explain"
            ]["sources"]["item_to_item"]["n"]
            > 0
        ),
        20,
    )
    # So does the re-ranking service's (MMR embeddings), through its own sync loop.
    eventually(lambda: synced_by_reranking() > before, 20)


def _candidates(base: str, user: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/candidates with a JSON body (what `curl` would send)."""
    body = {"context": {"request_id": "t", "now": time.time(), "user": user},
            "frame": {"ids": [], "columns": {}}}  # fmt: skip
    resp = httpx.post(f"{base}/v1/candidates", json=body)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


# ---- the served list on Kafka ---------------------------------------------------------------


def test_served_list_lands_on_the_served_topic(live_stack: LiveStack) -> None:
    from kafka import KafkaConsumer, TopicPartition

    body = whole(live_stack.recommend(user_id="7", k=5))
    consumer = KafkaConsumer(
        bootstrap_servers=live_stack.env["CASCADE_KAFKA_BOOTSTRAP"],
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    try:
        found = _find_record(consumer, TopicPartition, body["request_id"])
    finally:
        consumer.close()
    assert found["user_id"] == "7"
    assert found["item_ids"] == [i["item_id"] for i in body["items"]]
    assert len(found["propensity"]) == 5 and found["model_versions"] == body["model_versions"]
    assert found["variant"] == body["variant"] == "production"
    assert found["degraded"] == [] and found["cold_start"] == "returning"


def _find_record(consumer: Any, partition: Any, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = consumer.partitions_for_topic("served")
        if parts:
            consumer.assign([partition("served", p) for p in parts])
            consumer.seek_to_beginning()
            for record in _drain(consumer):
                value = orjson.loads(record.value)
                if value["request_id"] == request_id:
                    assert record.key == value["user_id"].encode()  # keyed by user
                    return dict(value)
        time.sleep(0.5)
    raise AssertionError(f"request {request_id} not on topic 'served'")


def _drain(consumer: Any) -> Iterator[Any]:
    while True:
        batch = consumer.poll(timeout_ms=500)
        if not batch:
            return
        for records in batch.values():
            yield from records


# ---- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["hung", "killed"])
@pytest.mark.parametrize("service", list(SERVICE_STAGE))
def test_stage_service_fault_degrades_and_recovers(
    live_stack: LiveStack, service: str, fault: str
) -> None:
    """SIGSTOP (hung for real) or SIGKILL a stage's process: the answer is a 200 with items,
    marked degraded with that stage's reason and fallback; once back, answers are whole."""
    stage = SERVICE_STAGE[service]
    trouble = live_stack.paused(service) if fault == "hung" else live_stack.killed(service)
    with trouble:
        resp = live_stack.recommend(user_id="2", k=10)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["degraded"] is True and len(body["items"]) == 10
        reasons = [r for r in body["degraded_reasons"] if r.startswith(f"{stage}: ")]
        assert reasons, body["degraded_reasons"]
        assert ("timeout" if fault == "hung" else "unreachable") in reasons[0]
        assert "; fallback: " in reasons[0]
    eventually(lambda: _is_whole(live_stack))


@pytest.mark.parametrize("fault", ["hung", "killed"])
def test_feature_store_fault_degrades_and_recovers(live_stack: LiveStack, fault: str) -> None:
    """The online store (Redis) hung or killed: user and item features fall back (unknown
    user, cached catalog attributes), candidates to the last known trending list."""
    trouble = live_stack.paused("redis") if fault == "hung" else live_stack.killed("redis")
    with trouble:
        resp = live_stack.recommend(user_id="2", k=10)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["degraded"] is True and body["items"]
        stages = [r.split(":")[0] for r in body["degraded_reasons"]]
        assert {"user_features", "item_features"} <= set(stages), body["degraded_reasons"]
        assert body["cold_start"] == "unknown_user"
    eventually(lambda: _is_whole(live_stack), 60)


# ---- the serving read path of the online store -----------------------------------------------


async def test_read_cache_and_preload_give_what_redis_holds(live_stack: LiveStack) -> None:
    """The gateway's reader (catalog preloaded, 1 s counter cache) answers exactly what a
    plain reader does; a new event shows up once the cache entry is older than its TTL."""
    import numpy as np

    from shared.online_store.reader import OnlineStore
    from shared.platform.redis_client import create_async_redis

    client = create_async_redis(live_stack.env["CASCADE_REDIS_URL"])
    try:
        plain, cached = OnlineStore(client), OnlineStore(client, cache_ttl_s=0.3)
        assert await cached.preload_catalog() > 500
        ids = [m.decode() for m in await client.srandmember(keys.CATALOG_IDS, 200)] + ["ghost"]
        now = time.time()
        for _ in range(2):  # second round: served from the caches
            a, b = await plain.get_items(ids, now), await cached.get_items(ids, now)
            assert a.found.tolist() == b.found.tolist() and not b.found[-1]
            np.testing.assert_array_equal(a.counts, b.counts)
            np.testing.assert_array_equal(a.genres, b.genres)
            assert a.regions == b.regions and list(a.features) == list(b.features)
        before = (await cached.get_items(ids[:1], now)).counts[0, 0]
        StoreWriter(_store(live_stack)).apply_events(
            [
                Event(
                    event_id=f"c-{uuid.uuid4().hex}",
                    user_id="9",
                    item_id=ids[0],
                    type="click",
                    timestamp=now,
                )
            ]  # fmt: skip
        )
        time.sleep(0.4)
        assert (await cached.get_items(ids[:1], now)).counts[0, 0] == before + 1
    finally:
        await client.aclose()


# ---- the load test's verdict against the latency budget -------------------------------------


def test_loadtest_names_the_stage_slowed_on_purpose(live_stack: LiveStack, tmp_path: Path) -> None:
    """`python -m loadtests.loadtest` against a gateway whose ranking calls go through a proxy
    that holds them 150 ms (ranking's budget: 60 ms, every other stage 400 ms): ranking breaks
    its budget at the first rate, told by its timeouts (the gateway cuts it at 60 ms, so its
    p99 alone would look fine), and no other stage breaks."""
    budget = write_budget(tmp_path / "budget.yaml", stage_ms=400.0)
    spec = orjson.loads(budget.read_bytes())
    spec["stages"]["ranking"], spec["total_ms"] = 60.0, 3000.0
    budget.write_bytes(orjson.dumps(spec))
    env = {**live_stack.env, "CASCADE_LATENCY_BUDGET": str(budget)}
    out = tmp_path / "report"
    args = ["--budget", str(budget), "--rates", "4", "8", "12", "--step-s", "3", "--out", str(out)]
    args += ["--warmup-s", "2", "--pause-s", "0.5", "--settle-s", "0.5"]
    args += ["--stop-degraded-share", "1"]  # every answer is degraded: run every rate anyway
    with gateway_with_slow_stage(env, live_stack.procs, live_stack.log_dir, "ranking", 0.15) as gw:
        metrics = [f"gateway={gw}", *(f"{n}={live_stack.url(n)}" for n in SERVICE_STAGE)]
        cmd = [sys.executable, "-m", "loadtests.loadtest", "--gateway", gw, "--metrics", *metrics]
        repo = Path(__file__).resolve().parents[2]
        run = subprocess.run(cmd + args, cwd=repo, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    report = orjson.loads((out / "loadtest.json").read_bytes())
    verdict, steps = report["verdict"], report["steps"]
    assert verdict["first_broken"] == ["ranking"], run.stdout
    ranking = verdict["stages"]["ranking"]
    assert (ranking["within_up_to_rps"], ranking["first_broke_rps"]) == (None, 4.0)
    assert ranking["why"].startswith("failed") and "timeout" in ranking["why"]
    others = {n: v for n, v in verdict["stages"].items() if n != "ranking" and v["called"]}
    assert set(SERVICE_STAGE.values()) - {"ranking"} <= set(others)
    assert all(v["first_broke_rps"] is None for v in others.values()), others
    assert all(v["within_up_to_rps"] == 12.0 for v in others.values()), others
    assert [s["rate_rps"] for s in steps] == [4.0, 8.0, 12.0]
    for step in steps:
        assert step["client"]["errors"] == 0
        assert step["client"]["degraded_by_stage"].get("ranking", 0) > 0
        assert step["stages"]["ranking"]["service"]["calls"] > 0  # the work arrived, late
    assert verdict["knee_rps"] is None  # every answer fell back on the retrieval order
    assert "first to break its budget: ranking" in run.stdout
    assert (out / "index.html").is_file() and (out / "stages.png").is_file()
