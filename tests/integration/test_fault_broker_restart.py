"""Fault matrix: the broker restarts → producers and consumers reconnect, nothing acknowledged
is lost.

The broker here is Tansu, memory-only: a restart loses its topics, their records and the
consumer groups' offsets (docs/faults.md says what that means and what a real Kafka keeps). So
"nothing acknowledged is lost" is checked the way it can hold on it: every event the API
acknowledged before the restart was applied (Redis) and logged (Parquet) before the broker went
away; during the outage the API refuses with 503, never a 202 it cannot keep; every event
acknowledged after the restart reaches both consumers, whose positions on the old topics must
not skip the new topics' first records.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from deploy.local import infra
from deploy.local.processes import free_port, running
from shared.offline_store import EventLog
from shared.online_store.reader import OnlineStore
from tests.conftest import ServiceStarter
from tests.integration.test_offline_sink import sink_env

pytestmark = pytest.mark.integration
DB = 7  # a database of its own: other suites flush db 0


def eventually(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.3)


def clicks(n: int, tag: str) -> list[dict[str, object]]:
    """``n`` clicks, each by its own user on item ``i-<tag>``."""
    now = time.time()
    return [
        {"event_id": f"{tag}-{k}", "user_id": f"u-{tag}-{k}", "item_id": f"i-{tag}",
         "type": "click", "timestamp": now - 1}
        for k in range(n)
    ]  # fmt: skip


def post(api: str, events: list[dict[str, object]]) -> int:
    """POST a batch to the events API; its status code (0 when it did not answer)."""
    try:
        answer = httpx.post(f"{api}/v1/events", json={"events": events}, timeout=15)
    except httpx.HTTPError:
        return 0
    assert answer.status_code in (202, 503), answer.text  # accepted, or refused: retry
    return answer.status_code


def applied(redis_url: str, events: list[dict[str, object]]) -> int:
    """How many of ``events`` the online store shows (the item in the user's seen set)."""

    async def count() -> int:
        client = aioredis.Redis.from_url(redis_url)
        try:
            store = OnlineStore(client)
            states = [await store.get_user(str(e["user_id"]), time.time()) for e in events]
            return sum(str(e["item_id"]) in s.seen for e, s in zip(events, states, strict=True))
        finally:
            await client.aclose()

    return asyncio.run(count())


def logged(log: EventLog) -> set[str]:
    """Event ids in the Parquet log."""
    if not log.count():
        return set()
    return {r[0] for r in log.connect().execute("SELECT event_id FROM events").fetchall()}


def test_after_a_broker_restart_every_acknowledged_event_is_applied_and_logged(
    start_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    store_url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    tag = uuid.uuid4().hex[:8]
    topic = f"restart-{tag}"
    logs = tmp_path / "logs"
    broker = running(infra.tansu_spec(port), logs)
    broker.__enter__()
    try:
        env = {"CASCADE_KAFKA_BOOTSTRAP": bootstrap, "CASCADE_EVENTS_TOPIC": topic}
        api = start_service("events", env, require_ready=True)
        start_service("ingest", {
            "CASCADE_REDIS_URL": store_url, "CASCADE_KAFKA_BOOTSTRAP": bootstrap,
            "CASCADE_INGEST_TOPIC": topic, "CASCADE_INGEST_DLQ_TOPIC": f"{topic}.dlq",
            "CASCADE_INGEST_GROUP_ID": f"ingest-{tag}",
            "CASCADE_INGEST_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_INGEST_HEARTBEAT_INTERVAL_MS": "2000",
        })  # fmt: skip
        start_service("offline_sink", sink_env(bootstrap, topic, tmp_path / "events"))
        log = EventLog(tmp_path / "events")

        before = clicks(100, f"{tag}-a")
        assert post(api, before) == 202
        eventually(lambda: applied(store_url, before) == 100, 60, "the first clicks applied")
        eventually(lambda: len(logged(log)) == 100, 60, "the first clicks logged")

        broker.__exit__(None, None, None)  # the broker goes away, and its topics with it
        assert post(api, clicks(5, f"{tag}-x")) in (0, 503)  # never a 202 it cannot keep

        broker = running(infra.tansu_spec(port), logs)
        broker.__enter__()
        after = clicks(100, f"{tag}-b")
        acknowledged: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        for k in range(0, 100, 10):  # acknowledged a batch at a time, as clients retry a 503
            while post(api, after[k : k + 10]) != 202:
                assert time.monotonic() < deadline, "the API never accepted again"
                time.sleep(0.5)
            acknowledged += after[k : k + 10]
        eventually(lambda: applied(store_url, acknowledged) == 100, 90, "the later clicks applied")
        ids = {str(e["event_id"]) for e in before + acknowledged}
        eventually(lambda: logged(log) >= ids, 90, "the later clicks logged")
        assert logged(log) <= ids | {f"{tag}-x-{k}" for k in range(5)}
    finally:
        broker.__exit__(None, None, None)
