"""The events API as a real process against a real Kafka-protocol broker."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from deploy.local import infra
from deploy.local.processes import free_port, running
from shared.events import Event, decode_event
from tests.conftest import ServiceStarter
from tests.utils.auth import ADMIN
from tests.utils.servers import service_spec

pytestmark = pytest.mark.integration


def make_events(n: int, users: int = 5, ts: float | None = None) -> list[dict[str, object]]:
    """``n`` valid events (JSON-ready) over a few users; ids are unique per call."""
    now = ts or time.time()
    tag = uuid.uuid4().hex[:8]
    types = ["impression", "click", "watch", "like", "rate"]
    out: list[dict[str, object]] = []
    for k in range(n):
        etype = types[k % len(types)]
        e: dict[str, object] = {
            "event_id": f"{tag}-{k}", "user_id": f"u{k % users}", "item_id": f"i{k % 11}",
            "type": etype, "timestamp": now - (n - k) * 0.001, "position": k % 10,
        }  # fmt: skip
        if etype in ("watch", "rate"):
            e["value"] = 4.0
        out.append(e)
    return out


def read_topic(bootstrap: str, topic: str, expect: int, timeout_s: float = 20.0) -> list[object]:
    """Every record of ``topic`` from the beginning (no consumer group), until ``expect`` came."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        records: list[object] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def post(base: str, events: list[dict[str, object]], timeout_s: float = 15.0) -> httpx.Response:
    """POST /v1/events."""
    return httpx.post(f"{base}/v1/events", json={"events": events}, timeout=timeout_s)


@pytest.fixture
def events_api(
    start_service: ServiceStarter, kafka_bootstrap: str, unique_topic: str
) -> Iterator[str]:
    """The events service on the session broker, writing to a topic of its own."""
    env = {
        "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CASCADE_EVENTS_TOPIC": unique_topic,
        "CASCADE_EVENTS_MAX_BATCH": "50",
        "CASCADE_EVENTS_MAX_FUTURE_S": "60",
    }
    yield start_service("events", env, require_ready=True)


def test_accepted_events_are_on_the_topic_keyed_by_user(
    events_api: str, kafka_bootstrap: str, unique_topic: str
) -> None:
    sent = make_events(40)
    before = time.time()
    resp = post(events_api, sent)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 40}
    records = read_topic(kafka_bootstrap, unique_topic, 40)
    assert len(records) == 40
    got: dict[str, Event] = {}
    for rec in records:
        e = decode_event(rec.value)  # type: ignore[attr-defined]
        assert rec.key == e.user_id.encode()  # type: ignore[attr-defined]
        assert e.accepted_ts is not None and before - 1 <= e.accepted_ts <= time.time()
        got[e.event_id] = e
    assert set(got) == {str(e["event_id"]) for e in sent}
    # One user's events share a partition, in the order they were sent.
    by_part: dict[int, list[str]] = {}
    for rec in records:
        by_part.setdefault(rec.partition, []).append(decode_event(rec.value).event_id)  # type: ignore[attr-defined]
    u0 = [str(e["event_id"]) for e in sent if e["user_id"] == "u0"]
    assert any([i for i in ids if i in u0] == u0 for ids in by_part.values())


def test_bad_batches_get_422_naming_field_and_index_and_write_nothing(
    events_api: str, kafka_bootstrap: str, unique_topic: str
) -> None:
    good = make_events(3)
    cases: list[tuple[object, list[object]]] = [
        ([good[0], {**good[1], "type": "purchase"}], ["body", "events", 1, "type"]),
        ([{k: v for k, v in good[0].items() if k != "user_id"}], ["body", "events", 0, "user_id"]),
        ([good[0], good[1], {**good[2], "event_id": ""}], ["body", "events", 2, "event_id"]),
        ([{**good[0], "timestamp": time.time() + 3600}], ["body", "events", 0, "timestamp"]),
        (make_events(51), ["body", "events"]),
        ([], ["body", "events"]),
    ]
    for events, loc in cases:
        resp = httpx.post(f"{events_api}/v1/events", json={"events": events}, timeout=10)
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"][0]["loc"] == loc
    resp = httpx.post(f"{events_api}/v1/events", content=b"{oops", timeout=10)
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body"]
    assert read_topic(kafka_bootstrap, unique_topic, 1, timeout_s=1.0) == []


def test_broker_unreachable_from_the_start_gives_503_with_retry_after(
    start_service: ServiceStarter,
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    base = start_service("events", {"CASCADE_KAFKA_BOOTSTRAP": closed})
    resp = post(base, make_events(2))
    assert resp.status_code == 503
    assert int(resp.headers["retry-after"]) >= 1
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 503 and not ready.json()["ready"]
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200


def test_broker_killed_midway_gives_503_then_recovers(tmp_path: Path) -> None:
    port = free_port()
    with running(infra.tansu_spec(port), tmp_path) as broker:
        env = {
            "CASCADE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
            "CASCADE_EVENTS_PRODUCE_TIMEOUT_S": "2",
            "CASCADE_EVENTS_TOPIC_RETRY_S": "0.5",
        }
        with running(service_spec("events", env, require_ready=True), tmp_path) as api:
            base = api.spec.url
            assert post(base, make_events(5)).status_code == 202
            os.kill(broker.pid, signal.SIGKILL)
            broker.popen.wait(5)
            start = time.monotonic()
            resp = post(base, make_events(5))
            assert resp.status_code == 503, resp.text
            assert resp.headers["retry-after"]
            assert time.monotonic() - start < 5
            # Memory-only Tansu comes back empty: the service recreates the topic by itself.
            with running(infra.tansu_spec(port), tmp_path):
                _wait_ready(base, 30)
                assert post(base, make_events(5)).status_code == 202


def _wait_ready(base: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(httpx.get(f"{base}/readyz", timeout=5).text)


def test_a_frozen_broker_gives_503_and_no_accepted_event_is_ever_lost(tmp_path: Path) -> None:
    """The broker stops answering (SIGSTOP: a hung broker or a partition) in the middle of a
    stream of batches. The client gets 503 + Retry-After, retries the same batch, and in the
    end every event ever answered 202 is on the topic (retried ones possibly twice)."""
    port = free_port()
    with running(infra.tansu_spec(port), tmp_path) as broker:
        bootstrap = f"127.0.0.1:{port}"
        env = {
            "CASCADE_KAFKA_BOOTSTRAP": bootstrap,
            "CASCADE_EVENTS_PRODUCE_TIMEOUT_S": "1",
            "CASCADE_EVENTS_TOPIC_RETRY_S": "0.3",
            "CASCADE_EVENTS_RETRY_AFTER_S": "1",
        }
        with running(service_spec("events", env, require_ready=True), tmp_path) as api:
            batches = [make_events(20) for _ in range(12)]
            accepted: list[str] = []
            refused = 0
            for n, batch in enumerate(batches):
                if n == 4:
                    os.kill(broker.pid, signal.SIGSTOP)
                for _attempt in range(40):
                    resp = post(api.spec.url, batch)
                    if resp.status_code == 202:
                        accepted += [str(e["event_id"]) for e in batch]
                        break
                    assert resp.status_code == 503, resp.text
                    assert int(resp.headers["retry-after"]) == 1
                    refused += 1
                    if refused == 2:
                        os.kill(broker.pid, signal.SIGCONT)
                    time.sleep(0.2)
                else:
                    raise AssertionError(f"batch {n} never accepted after the broker came back")
        assert refused >= 2
        on_topic = {decode_event(r.value).event_id for r in read_topic(bootstrap, "events", 240)}  # type: ignore[attr-defined]
        assert len(accepted) == 240 and set(accepted) <= on_topic


def test_an_operator_can_require_the_token_for_events(
    start_service: ServiceStarter, kafka_bootstrap: str, unique_topic: str
) -> None:
    env = {
        "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CASCADE_EVENTS_TOPIC": unique_topic,
        "CASCADE_EVENTS_REQUIRE_TOKEN": "true",
    }
    base = start_service("events", env, require_ready=True)
    body = {"events": make_events(3)}
    refused = httpx.post(f"{base}/v1/events", json=body, timeout=10)
    assert refused.status_code == 401 and "Bearer" in refused.json()["detail"]
    assert read_topic(kafka_bootstrap, unique_topic, 1, timeout_s=1.0) == []
    accepted = httpx.post(f"{base}/v1/events", json=body, headers=ADMIN, timeout=10)
    assert accepted.status_code == 202 and accepted.json() == {"accepted": 3}
