"""The serving path for real: Redis, the Kafka-protocol broker, MLflow, the four stage services
and two gateways as processes, on models trained by the real pipeline and loaded from the
MLflow alias ``production``; HTTP from outside like any client.

One module on purpose: the trained models and the running stack are expensive, and module
scope shares them between every test here. Tests that break a process (SIGSTOP, SIGKILL)
restore it before they end, so their order does not matter.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from deploy.local.processes import start, stop
from loadtests.serving_stack import service_spec
from shared.events import Event
from shared.online_store.types import UserProfile
from shared.online_store.writer import StoreWriter
from tests.integration.serving_fixtures import (
    LiveStack,
    live_stack,
    registered_models,
    trained_models,
    write_budget,
)
from tests.utils.metrics import scrape

__all__ = ["live_stack", "registered_models", "trained_models"]  # fixtures used here
pytestmark = pytest.mark.integration

STAGES = ("user_features", "candidates", "item_features", "filtering", "ranking", "reranking")
SERVICE_STAGE = {  # process -> the stage name its failure shows up under
    "candidate_generation": "candidates",
    "filtering": "filtering",
    "ranking": "ranking",
    "reranking": "reranking",
}


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


@pytest.mark.parametrize("gateway", ["gateway", "gateway_in_process"])
def test_request_through_every_stage(
    live_stack: LiveStack, trained_models: Path, gateway: str
) -> None:
    resp = live_stack.recommend(gateway, user_id="1", k=10, explain="true")
    body = whole(resp)
    items = [i["item_id"] for i in body["items"]]
    assert len(items) == 10 == len(set(items)) and body["cold_start"] == "returning"
    assert body["request_id"] == resp.headers["x-request-id"]
    seen = {m.decode() for m in _store(live_stack).smembers("{u:1}:seen")}
    assert seen and not set(items) & seen  # the seen filter ran on the real user state
    timing = resp.headers["server-timing"]
    for stage in STAGES:
        assert f"{stage};dur=" in timing
    assert "total;dur=" in timing
    bundle_id = orjson.loads((trained_models / "manifest.json").read_bytes())["bundle_id"]
    assert body["model_versions"] == {
        "user_tower": bundle_id,
        "item_tower": bundle_id,
        "item_index": bundle_id,
        "ranker": bundle_id,
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
    for name, parts in (
        ("ranking", ["ranker"]),
        ("reranking", ["item_index"]),
        ("candidate_generation", ["user_tower", "item_index"]),
        ("gateway_in_process", ["user_tower", "item_index", "ranker"]),
    ):
        ready = httpx.get(f"{live_stack.url(name)}/readyz").json()
        assert ready["ready"] is True
        reason = ready["checks"]["models"]["reason"]
        for part in parts:
            registered = f"cascade-{part.replace('_', '-')}"
            assert f"models:/{registered}/{registered_models[registered]} (@production)" in reason
    # The ranker runs with int8 weights when training shipped them (their top-10 agreed).
    export = orjson.loads((trained_models / "manifest.json").read_bytes())["export"]
    shipped = export["ranker_int8_shipped"] == 1.0
    assert shipped == (trained_models / "ranker" / "ranker_int8.onnx").is_file()
    reason = httpx.get(f"{live_stack.url('ranking')}/readyz").json()["checks"]["models"]["reason"]
    assert f"({'ranker_int8.onnx' if shipped else 'ranker.onnx'})" in reason
    gateway = httpx.get(f"{live_stack.url()}/readyz").json()["checks"]["warm_up"]
    assert gateway["ok"] and gateway["reason"].startswith("ok: every stage answered")


def test_readiness_waits_for_the_alias(
    registered_models: dict[str, str], live_stack: LiveStack, mlflow_tracking_uri: str
) -> None:
    """A ranking service whose alias points nowhere yet is alive but not ready; it becomes
    ready by itself once the alias is set (schema-checked and warmed up on the way)."""
    from mlflow.tracking import MlflowClient

    alias = f"candidate-{uuid.uuid4().hex[:8]}"
    env = {**live_stack.env, "CASCADE_MODEL_ALIAS": alias, "CASCADE_MODEL_POLL_S": "1"}
    proc = start(service_spec("ranking", env, f"ranking-{alias}"), live_stack.log_dir)
    try:
        base = proc.spec.url
        eventually(lambda: f"behind alias '{alias}'" in _models_reason(base))
        assert _status(f"{base}/readyz") == 503  # alive, not ready, and says why
        client = MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)
        version = registered_models["cascade-ranker"]
        client.set_registered_model_alias("cascade-ranker", alias, version)
        eventually(lambda: _status(f"{base}/readyz") == 200)
        reason = httpx.get(f"{base}/readyz").json()["checks"]["models"]["reason"]
        assert f"models:/cascade-ranker/{version} (@{alias})" in reason
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
    cands = httpx.post(f"{cg}/v1/candidates", json={"user_id": fan, "now": time.time()}).json()
    assert cands["status"]["item_to_item"][0] > 0, cands["status"]
    # The catalog knows it too: the fresh-items source offers it to a user never seen before.
    stranger = httpx.post(f"{cg}/v1/candidates", json={"user_id": "nobody", "now": time.time()})
    assert item_id in stranger.json()["item_ids"]
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

    from shared.online_store import OnlineStore
    from shared.redis_client import create_async_redis

    client = create_async_redis(live_stack.env["CASCADE_REDIS_URL"])
    try:
        plain, cached = OnlineStore(client), OnlineStore(client, cache_ttl_s=0.3)
        assert await cached.preload_catalog() > 500
        ids = [m.decode() for m in await client.srandmember("catalog:ids", 200)] + ["ghost"]
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
