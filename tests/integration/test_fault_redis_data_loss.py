"""Fault matrix: Redis restarts with its data lost → answers are marked degraded while the
feature store's keeper re-runs the bootstrap, then whole again.

A Redis without persistence, SIGKILLed and started again on the same port: every key is gone
and every read answers, with nothing. Before this, the gateway served those empty answers
unmarked (no items, the user "unknown", `degraded: false`).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import infra
from deploy.local.processes import free_port, running, start, stop, wait_ready
from shared.online_store import keys
from shared.online_store.health import store_problem
from shared.platform.redis_client import create_async_redis
from tests.integration.serving_fixtures import TRAINING_DATA, load_store, write_budget
from tests.utils.metrics import scrape as metrics
from tests.utils.servers import service_spec

pytestmark = pytest.mark.integration

USER = "1"  # in the tiny MovieLens fixture: a returning user
CHECK_S = 0.5  # the gateway's store check
GRACE_S = 3 * CHECK_S  # answers before the first check after the loss may not know yet


def recommend(gateway: str) -> dict[str, Any]:
    """One answer for USER."""
    answer = httpx.get(
        f"{gateway}/v1/recommendations", params={"user_id": USER, "k": 5}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def whole(body: dict[str, Any]) -> bool:
    """A full answer for a returning user, nothing degraded."""
    return not body["degraded"] and body["cold_start"] == "returning" and len(body["items"]) == 5


def test_answers_are_marked_while_a_lost_store_is_rebuilt_then_whole_again(
    trained_models: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    redis_spec = infra.redis_spec(free_port(), tmp_path / "redis")  # no persistence
    redis_proc = start(redis_spec, logs)
    wait_ready(redis_proc)
    try:
        load_store(redis_spec.url)
        keeper_env = {
            "CASCADE_REDIS_URL": redis_spec.url,
            "CASCADE_FEATURE_STORE_BOOTSTRAP_DATA": str(TRAINING_DATA),
            "CASCADE_FEATURE_STORE_BOOTSTRAP_CHECK_S": "2",
        }
        gateway_env = {
            "CASCADE_REDIS_URL": redis_spec.url,
            "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CASCADE_MODELS_DIR": str(trained_models),
            "CASCADE_GATEWAY_MODE": "in_process",
            "CASCADE_GATEWAY_SERVED_LOG": "false",
            "CASCADE_GATEWAY_STORE_CHECK_S": str(CHECK_S),
            "CASCADE_GATEWAY_READ_CACHE_S": "0",
            "CASCADE_LATENCY_BUDGET": str(write_budget(tmp_path / "budget.yaml")),
            "OPENBLAS_NUM_THREADS": "1",
        }
        with (
            running(service_spec("feature_store", keeper_env, require_ready=True), logs) as fs,
            running(service_spec("gateway", gateway_env, require_ready=True), logs) as gw,
        ):
            gateway = gw.spec.url
            first = recommend(gateway)
            assert whole(first), (first["degraded_reasons"], first["cold_start"])

            os.kill(redis_proc.pid, signal.SIGKILL)  # lost with everything it held
            redis_proc.popen.wait(10)
            redis_proc = start(redis_spec, logs)
            wait_ready(redis_proc)
            lost_at = time.monotonic()

            marked: list[str] = []
            unmarked_broken = 0
            deadline = lost_at + 90
            while True:
                body = recommend(gateway)
                store = [r for r in body["degraded_reasons"] if "online store" in r]
                if store:
                    assert store[0].startswith("user_features: online store "), store
                    assert body["cold_start"] == "unknown_user"  # served as for a stranger
                    marked.append(store[0])
                elif whole(body):
                    if marked:
                        break
                elif not body["degraded"] and time.monotonic() - lost_at > GRACE_S:
                    unmarked_broken += 1  # (another stage's timeout is marked: not counted)
                assert time.monotonic() < deadline, f"never whole again; marked: {marked[-1:]}"
                time.sleep(0.1)

            assert unmarked_broken == 0
            # "empty" until the keeper's next check (at most 2 s), then "being rebuilt": the
            # keeper may win the race to the first answer, so either may come first; each
            # state is checked on its own in test_store_problem_names_each_state
            assert all(("empty: no catalog" in r or "being rebuilt" in r) for r in marked), marked
            ready = httpx.get(f"{fs.spec.url}/readyz", timeout=5).json()["checks"]
            assert ready["store_keeper"]["reason"].startswith("ok: rebuilt 1 time(s)")
            m = metrics(fs.spec.url)
            assert m["cascade_store_rebuilds_total{outcome=done}"] == 1
            store = httpx.get(f"{gateway}/readyz", timeout=5).json()["checks"]["store"]
            assert store["ok"] is True
    finally:
        stop(redis_proc)


async def test_store_problem_names_each_state(redis_client: Any, redis_url: str) -> None:
    """The gateways' check on a real Redis: empty, being rebuilt, whole."""
    client = create_async_redis(redis_url)
    try:
        assert (await store_problem(client)).startswith("online store empty: no catalog")
        redis_client.set(keys.STORE_REBUILDING, str(time.time() - 5))
        assert (await store_problem(client)).startswith("online store being rebuilt (bootstrap")
        redis_client.delete(keys.STORE_REBUILDING)
        redis_client.sadd(keys.CATALOG_IDS, "1")
        assert await store_problem(client) == ""
    finally:
        await client.aclose()
