"""The ingest worker as a real process: real broker, real Redis, SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from deploy.local.processes import free_port
from shared.kafka import ensure_topics
from shared.online_store import ItemRecord
from shared.online_store.counter_layout import TOTAL_INTERACTIONS, CounterLayout
from shared.online_store.writer import StoreWriter
from tests.conftest import ServiceStarter
from tests.utils.servers import running, service_spec

pytestmark = pytest.mark.integration
DB = 5  # a database of its own: other suites flush db 0


def db_url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{DB}"


def wait_until(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or check}")


def event(user: str, item: str, kind: str, event_id: str | None = None) -> dict[str, Any]:
    now = time.time()
    return {
        "event_id": event_id or uuid.uuid4().hex, "user_id": user, "item_id": item,
        "type": kind, "timestamp": now - 1, "accepted_ts": now,
    }  # fmt: skip


class Stream:
    """A fresh topic pair, a producer and the worker environment for it."""

    def __init__(self, bootstrap: str, redis_url: str, batch_size: int = 500) -> None:
        tag = uuid.uuid4().hex[:8]
        self.topic, self.dlq = f"ingest-{tag}", f"ingest-{tag}.dlq"
        ensure_topics(bootstrap, {self.topic: 3, self.dlq: 1})
        self.bootstrap = bootstrap
        self.producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), linger_ms=5)
        self.env = {
            "CASCADE_REDIS_URL": redis_url,
            "CASCADE_KAFKA_BOOTSTRAP": bootstrap,
            "CASCADE_INGEST_TOPIC": self.topic,
            "CASCADE_INGEST_DLQ_TOPIC": self.dlq,
            "CASCADE_INGEST_GROUP_ID": f"ingest-{tag}",
            "CASCADE_INGEST_BATCH_SIZE": str(batch_size),
            "CASCADE_INGEST_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_INGEST_HEARTBEAT_INTERVAL_MS": "2000",
            "CASCADE_INGEST_EVENT_PARTITIONS": "3",
        }

    def send(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self.producer.send(self.topic, key=e["user_id"].encode(), value=orjson.dumps(e))
        self.producer.flush()

    def send_raw(self, value: bytes) -> None:
        self.producer.send(self.topic, key=b"raw", value=value)
        self.producer.flush()

    def dead_letters(self) -> list[Any]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","))
        tp = TopicPartition(self.dlq, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records = [r for rs in consumer.poll(timeout_ms=3000).values() for r in rs]
        consumer.close()
        return records

    def close(self) -> None:
        self.producer.close()


@pytest.fixture
def store_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(db_url(redis_url))
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def stream(kafka_bootstrap: str, redis_url: str) -> Iterator[Stream]:
    s = Stream(kafka_bootstrap, db_url(redis_url))
    yield s
    s.close()


def totals(client: redis.Redis, items: list[str]) -> list[int]:
    """Interaction totals of items, straight from their counter blobs."""
    raw = client.mget([b"ictr:" + i.encode() for i in items])
    return CounterLayout().decode(raw)[:, TOTAL_INTERACTIONS].tolist()


def trending_top(client: redis.Redis) -> str | None:
    top = client.zrevrange(b"trending", 0, 0)
    return top[0].decode() if top else None


def test_events_change_features_and_bad_messages_are_dead_lettered(
    stream: Stream, store_client: redis.Redis, start_service: ServiceStarter
) -> None:
    StoreWriter(store_client).put_items([ItemRecord(f"i{k}", genres=("Drama",)) for k in range(5)])
    base = start_service("ingest", env=stream.env, require_ready=True)
    stream.send([event(f"u{k}", "i1", "click") for k in range(3)])
    dup = event("u1", "i2", "click", event_id="dup-1")
    stream.send([dup, dup, event("u1", "i3", "hide")])
    wait_until(lambda: store_client.sismember(b"{u:u1}:blk", b"i3"), what="hidden item blocked")
    assert trending_top(store_client) == "i1"
    stream.send_raw(b"{not json")
    stream.send_raw(orjson.dumps({"event_id": "x", "user_id": "u", "item_id": "i", "type": "buy"}))
    stream.send([event(f"b{k}", "i4", "click") for k in range(10)])  # a burst after the bad ones
    wait_until(lambda: trending_top(store_client) == "i4", what="burst moves i4 to the top")
    assert totals(store_client, ["i1", "i2", "i4"]) == [3, 1, 10]  # the duplicate counted once
    letters = wait_until(lambda: len(stream.dead_letters()) == 2 and stream.dead_letters())
    reasons = [dict(r.headers)["reason"].decode() for r in letters]
    assert letters[0].value == b"{not json" and "json" in reasons[0].lower()
    assert "type" in reasons[1]
    metrics = httpx.get(f"{base}/metrics").text
    assert "cascade_ingest_dead_letters_total 2.0" in metrics
    assert 'cascade_ingest_events_total{outcome="duplicate",type="click"} 1.0' in metrics
    assert "cascade_feature_freshness_seconds_count" in metrics
    assert "cascade_ingest_consumer_lag" in metrics


def test_sigkill_mid_stream_then_restart_counts_every_event_once(
    stream: Stream, store_client: redis.Redis, server_dir: Path
) -> None:
    items = [f"k{k}" for k in range(40)]
    events = [event(f"u{n % 97}", items[n % 40], "click", f"kill-{n}") for n in range(30_000)]
    replays = events[:300]  # the same ids again: at-least-once delivery from a client retry
    stream.send(events + replays)
    spec = service_spec("ingest", {**stream.env, "CASCADE_INGEST_BATCH_SIZE": "200"})
    logs = server_dir / "logs"
    with running(spec, logs) as first:
        progress = wait_until(lambda: sum(totals(store_client, items)), what="first batches")
        os.killpg(first.pid, signal.SIGKILL)
    assert 0 < progress < len(events), "the kill must land mid-stream"
    with running(service_spec("ingest", stream.env, port=free_port()), logs):
        wait_until(lambda: sum(totals(store_client, items)) >= len(events), 60, "all events")
        time.sleep(1.0)  # anything left to apply twice would show up now
        assert totals(store_client, items) == [len(events) // 40] * 40
        assert store_client.hget(b"{u:u0}:h", b"n") == str(30_000 // 97 + 1).encode()


def test_worker_reports_not_ready_with_the_reason(
    redis_url: str, kafka_bootstrap: str, start_service: ServiceStarter
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    no_redis = start_service(
        "ingest",
        env={"CASCADE_REDIS_URL": f"redis://{dead}/0", "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap},
    )
    no_kafka = start_service(
        "ingest", env={"CASCADE_REDIS_URL": db_url(redis_url), "CASCADE_KAFKA_BOOTSTRAP": dead}
    )
    for base, dep in ((no_redis, "redis"), (no_kafka, "kafka")):
        resp = httpx.get(f"{base}/readyz", timeout=5)
        assert resp.status_code == 503
        check = resp.json()["checks"][dep]
        assert not check["ok"] and dead in check["reason"], check
    assert httpx.get(f"{no_kafka}/healthz").status_code == 200
