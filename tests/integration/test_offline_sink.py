"""The offline sink as a real process: events API → broker → sink → Parquet → DuckDB."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.processes import running
from shared.offline_store import EventLog
from shared.stream.producer import create_producer
from shared.stream.topic_keeper import ensure_topics
from tests.conftest import ServiceStarter
from tests.integration.test_events_api import make_events, post, read_topic
from tests.utils.metrics import scrape as metrics
from tests.utils.servers import service_spec

pytestmark = pytest.mark.integration

DAY = 86_400.0


def sink_env(bootstrap: str, topic: str, data_dir: Path) -> dict[str, str]:
    """Sink settings for a test: own topic, group and folder; quick flushes and group joins."""
    return {
        "CASCADE_KAFKA_BOOTSTRAP": bootstrap,
        "CASCADE_OFFLINE_SINK_TOPIC": topic,
        "CASCADE_OFFLINE_SINK_DLQ_TOPIC": f"{topic}.dlq",
        "CASCADE_OFFLINE_SINK_GROUP_ID": f"sink-{uuid.uuid4().hex[:8]}",
        "CASCADE_OFFLINE_SINK_DATA_DIR": str(data_dir),
        "CASCADE_OFFLINE_SINK_FLUSH_EVENTS": "150",
        "CASCADE_OFFLINE_SINK_FLUSH_INTERVAL_S": "0.5",
        "CASCADE_OFFLINE_SINK_MAX_POLL_RECORDS": "100",
        "CASCADE_OFFLINE_SINK_SESSION_TIMEOUT_MS": "6000",
        "CASCADE_OFFLINE_SINK_HEARTBEAT_INTERVAL_MS": "2000",
    }


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0, poll_s: float = 0.2) -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll_s)


def test_every_accepted_event_is_in_the_parquet_log(
    start_service: ServiceStarter, kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    env = {"CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap, "CASCADE_EVENTS_TOPIC": unique_topic}
    api = start_service("events", env, require_ready=True)
    sink = start_service("offline_sink", sink_env(kafka_bootstrap, unique_topic, tmp_path))
    now = time.time()
    sent = make_events(200, ts=now) + make_events(100, ts=now - 2 * DAY)
    for k in range(0, len(sent), 100):
        assert post(api, sent[k : k + 100]).status_code == 202
    log = EventLog(tmp_path)
    wait_for(lambda: log.count() == 300)
    days = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("date="))
    assert len(days) == 2  # partitioned by the events' own UTC day
    con = log.connect()
    ids = {r[0] for r in con.execute("SELECT event_id FROM events").fetchall()}
    assert ids == {e["event_id"] for e in sent}
    (missing_accepted,) = con.execute(
        "SELECT count(*) FROM events WHERE accepted_ts IS NULL"
    ).fetchone() or (None,)
    assert missing_accepted == 0
    by_type = dict(con.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
    assert by_type == {"impression": 60, "click": 60, "watch": 60, "like": 60, "rate": 60}
    for base, name in ((api, "cascade_events_accepted_total"),
                       (sink, "cascade_offline_sink_events_written_total")):  # fmt: skip
        samples = {
            s.labels["type"]: s.value
            for f in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
            for s in f.samples
            if s.name == name
        }
        assert samples == dict.fromkeys(by_type, 60.0), (name, samples)  # in and out, per type
    assert not list(tmp_path.glob("date=*/.*"))  # no temporary files left visible


def test_malformed_message_goes_to_the_dead_letter_topic_and_the_sink_goes_on(
    start_service: ServiceStarter, kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap, {unique_topic: 2})
    producer = create_producer(kafka_bootstrap)
    producer.send(unique_topic, key=b"u1", value=b"{not json")
    producer.send(unique_topic, key=b"u2", value=orjson.dumps({"event_id": "x", "type": "buy"}))
    future = {**make_events(1)[0], "user_id": "u3", "timestamp": time.time() + 86_400}
    producer.send(unique_topic, key=b"u3", value=orjson.dumps(future))  # would be date=tomorrow
    good = make_events(5)
    for e in good:
        producer.send(unique_topic, key=str(e["user_id"]).encode(), value=orjson.dumps(e))
    producer.flush()
    producer.close()
    start_service("offline_sink", sink_env(kafka_bootstrap, unique_topic, tmp_path))
    dead = read_topic(kafka_bootstrap, f"{unique_topic}.dlq", 3, timeout_s=30)
    letters = sorted((orjson.loads(r.value) for r in dead), key=lambda d: d["key"])  # type: ignore[attr-defined]
    assert [d["key"] for d in letters] == ["u1", "u2", "u3"]
    assert letters[0]["reason"].startswith("message: Invalid JSON")
    assert letters[1]["reason"].startswith("user_id: Field required")
    assert letters[2]["reason"].startswith("timestamp: Value error, lies more than 300 s")
    assert letters[1]["topic"] == unique_topic and letters[1]["source"].startswith("sink-")
    wait_for(lambda: EventLog(tmp_path).count() == 5, timeout_s=10)


def test_sigkill_mid_stream_loses_nothing(
    kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    """Offsets are committed after the fsync: a killed sink re-reads, the view dedupes."""
    ensure_topics(kafka_bootstrap, {unique_topic: 3})
    producer = create_producer(kafka_bootstrap)
    sent = make_events(3000)
    for e in sent:
        producer.send(unique_topic, key=str(e["user_id"]).encode(), value=orjson.dumps(e))
    producer.flush()
    producer.close()
    env = {
        **sink_env(kafka_bootstrap, unique_topic, tmp_path),
        "CASCADE_OFFLINE_SINK_FLUSH_EVENTS": "100",
    }
    log = EventLog(tmp_path)
    with running(service_spec("offline_sink", env), tmp_path / "logs") as sink:
        wait_for(lambda: any(tmp_path.glob("date=*/part-*")), poll_s=0.01)
        os.kill(sink.pid, signal.SIGKILL)
        sink.popen.wait(5)
    partial = log.count()
    with running(service_spec("offline_sink", env), tmp_path / "logs") as sink:
        wait_for(lambda: log.count() == 3000)
        ready = httpx.get(f"{sink.spec.url}/readyz", timeout=5).json()
        assert ready["ready"], ready
    con = log.connect()
    (raw,) = con.execute("SELECT count(*) FROM events_raw").fetchone() or (0,)
    assert partial < 3000 <= raw


def produce(bootstrap: str, topic: str, events: list[dict[str, object]]) -> None:
    """Write events straight to the topic (as another producer would), in order, one key."""
    producer = create_producer(bootstrap)
    for e in events:
        producer.send(topic, key=b"k", value=orjson.dumps(e))
    producer.flush()
    producer.close()


def poison(**extra: object) -> dict[str, object]:
    """An event that decodes but that Parquet cannot store: ``position`` beyond int32."""
    return {**make_events(1)[0], "position": 2**31, **extra}


def retry_env(bootstrap: str, topic: str, data_dir: Path, **knobs: str) -> dict[str, str]:
    """Sink settings with quick retries; ``knobs`` are CASCADE_OFFLINE_SINK_<NAME> overrides."""
    env = sink_env(bootstrap, topic, data_dir) | {"CASCADE_OFFLINE_SINK_RETRY_BACKOFF_S": "0.1"}
    return env | {f"CASCADE_OFFLINE_SINK_{k.upper()}": v for k, v in knobs.items()}


def test_a_record_the_parquet_write_fails_on_is_dead_lettered_and_the_rest_written(
    start_service: ServiceStarter, kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap, {unique_topic: 1, f"{unique_topic}.dlq": 1})
    good = make_events(40)
    produce(kafka_bootstrap, unique_topic, [*good[:20], poison(), *good[20:]])
    env = retry_env(kafka_bootstrap, unique_topic, tmp_path, max_retries="2")
    sink = start_service("offline_sink", env)
    wait_for(lambda: EventLog(tmp_path).count() == 40, timeout_s=20)
    (dead,) = read_topic(kafka_bootstrap, f"{unique_topic}.dlq", 1, timeout_s=10)
    letter = orjson.loads(dead.value)  # type: ignore[attr-defined]
    assert (letter["topic"], letter["partition"], letter["offset"]) == (unique_topic, 0, 20)
    # tried once, retried twice, then alone once more
    assert letter["reason"].startswith("handler failed after 4 attempt(s): ArrowInvalid: ")
    assert "2147483648" in letter["reason"]
    group = env["CASCADE_OFFLINE_SINK_GROUP_ID"]
    m = metrics(sink)
    assert m[f"cascade_consumer_dead_letters_total{{consumer={group},reason=handler}}"] == 1
    assert m[f"cascade_consumer_retries_total{{consumer={group}}}"] == 3
    assert m[f"cascade_consumer_failures_in_a_row{{consumer={group}}}"] == 0
    ready = httpx.get(f"{sink}/readyz", timeout=5)
    assert ready.status_code == 200 and "dead-lettered 1 poison record(s)" in ready.text


def test_a_sink_retrying_past_the_threshold_is_not_ready_and_says_why(
    start_service: ServiceStarter, kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    """Before dead-lettering (here: never, within the test) a stuck consumer fails /readyz."""
    ensure_topics(kafka_bootstrap, {unique_topic: 1, f"{unique_topic}.dlq": 1})
    produce(kafka_bootstrap, unique_topic, [poison()])
    env = retry_env(kafka_bootstrap, unique_topic, tmp_path, max_retries="1000", stuck_after="2")
    sink = start_service("offline_sink", env)
    wait_for(lambda: httpx.get(f"{sink}/readyz", timeout=5).status_code == 503, timeout_s=20)
    reason = httpx.get(f"{sink}/readyz", timeout=5).json()["checks"]["consumer"]["reason"]
    assert reason.startswith("stuck: a batch failed ") and "ArrowInvalid" in reason
    group = env["CASCADE_OFFLINE_SINK_GROUP_ID"]
    assert metrics(sink)[f"cascade_consumer_failures_in_a_row{{consumer={group}}}"] >= 2
