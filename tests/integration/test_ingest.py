"""The ingest worker as a real process: real broker, real Redis, SIGKILL and restart; the
guarantees that matter on a Redis Cluster too (tests with a ``[cluster]`` case, and a batch cut
off between its per-slot calls)."""

from __future__ import annotations

import base64
import itertools
import math
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

from deploy.local import infra
from deploy.local.processes import free_port, running
from shared.events import Event
from shared.online_store import DEFAULT_STORE_CONFIG, ItemRecord, UserProfile, keys
from shared.online_store.counter_layout import TOTAL_INTERACTIONS, CounterLayout
from shared.online_store.effects import script_events
from shared.online_store.ingest_calls import ClusterIngest
from shared.online_store.writer import StoreWriter
from shared.platform.redis_client import SyncRedis
from shared.stream.topic_keeper import ensure_topics
from tests.conftest import ServiceStarter
from tests.utils.metrics import scrape as metrics
from tests.utils.servers import service_spec
from tests.utils.stores import STORE_KINDS, StoreTarget, applied_events, is_mark, store_target

pytestmark = pytest.mark.integration
DB = 5  # a database of its own: other suites flush db 0
REFERENCE_DB = 10  # the same events applied once, without a crash, for comparison


def db_url(redis_url: str, db: int = DB) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


def wait_until(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or check}")


def event(
    user: str, item: str, kind: str, event_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    now = time.time()
    return {
        "event_id": event_id or uuid.uuid4().hex, "user_id": user, "item_id": item,
        "type": kind, "timestamp": now - 1, "accepted_ts": now, **extra,
    }  # fmt: skip


class Stream:
    """A fresh topic pair, a producer and the worker environment for it."""

    def __init__(self, bootstrap: str, store: StoreTarget, batch_size: int = 500) -> None:
        tag = uuid.uuid4().hex[:8]
        self.topic, self.dlq, self.group = f"ingest-{tag}", f"ingest-{tag}.dlq", f"ingest-{tag}"
        ensure_topics(bootstrap, {self.topic: 3, self.dlq: 1})
        self.bootstrap = bootstrap
        self.producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), linger_ms=5)
        self.env = {
            **store.env(),
            "CASCADE_KAFKA_BOOTSTRAP": bootstrap,
            "CASCADE_INGEST_TOPIC": self.topic,
            "CASCADE_INGEST_DLQ_TOPIC": self.dlq,
            "CASCADE_INGEST_GROUP_ID": self.group,
            "CASCADE_INGEST_BATCH_SIZE": str(batch_size),
            "CASCADE_INGEST_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_INGEST_HEARTBEAT_INTERVAL_MS": "2000",
            "CASCADE_INGEST_EVENT_PARTITIONS": "3",
            "CASCADE_INGEST_LAG_INTERVAL_S": "0.2",
        }

    def send(self, events: list[dict[str, Any]], key: bytes | None = None) -> None:
        """Events keyed by user, or all by ``key`` (one partition: one batch, in order)."""
        for e in events:
            k = key or e["user_id"].encode()
            self.producer.send(self.topic, key=k, value=orjson.dumps(e))
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

    def committed(self) -> int:
        """Offsets the worker's group committed, summed over the partitions."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap.split(","), group_id=self.group,
            enable_auto_commit=False,
        )  # fmt: skip
        try:
            parts = [TopicPartition(self.topic, p) for p in range(3)]
            return sum(consumer.committed(tp) or 0 for tp in parts)
        finally:
            consumer.close()

    def close(self) -> None:
        self.producer.close()


@pytest.fixture
def target(request: pytest.FixtureRequest) -> StoreTarget:
    """Database DB of the session's Redis; a test parametrized with ``indirect`` over
    STORE_KINDS runs on the session's Redis Cluster too."""
    return store_target(request, getattr(request, "param", "node"), DB)


@pytest.fixture
def store_client(target: StoreTarget) -> Iterator[SyncRedis]:
    client = target.flushed()
    yield client
    client.close()


@pytest.fixture
def stream(kafka_bootstrap: str, target: StoreTarget) -> Iterator[Stream]:
    s = Stream(kafka_bootstrap, target)
    yield s
    s.close()


on_node_and_cluster = pytest.mark.parametrize("target", STORE_KINDS, indirect=True)


def totals(client: SyncRedis, items: list[str]) -> list[int]:
    """Interaction totals of items, straight from their counter blobs."""
    raw = client.mget([keys.item_counters(i) for i in items])
    return CounterLayout().decode(raw)[:, TOTAL_INTERACTIONS].tolist()


def trending_top(client: SyncRedis) -> str | None:
    top = client.zrevrange(keys.TRENDING, 0, 0)
    return top[0].decode() if top else None


@on_node_and_cluster
def test_events_change_features_and_bad_messages_are_dead_lettered(
    stream: Stream, store_client: SyncRedis, start_service: ServiceStarter
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
    # Another producer's far-future event would wipe i4's windows if applied.
    stream.send([event("u9", "i4", "click", event_id="future", timestamp=time.time() + 86_400)])
    stream.send([event(f"b{k}", "i4", "click") for k in range(10)])  # a burst after the bad ones
    wait_until(lambda: trending_top(store_client) == "i4", what="burst moves i4 to the top")
    assert totals(store_client, ["i1", "i2", "i4"]) == [3, 1, 10]  # the duplicate counted once
    letters = wait_until(lambda: len(stream.dead_letters()) == 3 and stream.dead_letters())
    bodies = {orjson.loads(r.value)["reason"].split(":")[0]: orjson.loads(r.value) for r in letters}
    assert bodies.keys() == {"message", "type", "timestamp"}  # the bad field of each
    assert "in the future" in bodies["timestamp"]["reason"]
    assert base64.b64decode(bodies["message"]["value_b64"]) == b"{not json"
    bodies_list = list(bodies.values())
    assert {b["source"] for b in bodies_list} == {stream.group}
    assert {b["topic"] for b in bodies_list} == {stream.topic}
    assert not any(store_client.scan_iter(match=b"*ev:future"))
    m = metrics(base)
    assert m["cascade_ingest_dead_letters_total{}"] == 3
    assert m["cascade_ingest_events_total{outcome=duplicate,type=click}"] == 1
    assert m["cascade_ingest_events_total{outcome=applied,type=click}"] == 14
    assert m["cascade_ingest_events_total{outcome=applied,type=hide}"] == 1
    assert m["cascade_feature_freshness_seconds_count{}"] == 15  # applied events only
    assert m["cascade_ingest_batch_write_seconds_count{}"] >= 1
    wait_until(lambda: metrics(base)["cascade_ingest_consumer_lag{}"] == 0, what="lag 0")


MIX = ("click", "impression", "impression", "like", "rate", "watch", "hide", "report")


def mixed_events(n: int, items: list[str]) -> list[dict[str, Any]]:
    """``n`` events of every type over 97 users, one second apart per 1000 events."""
    out = []
    base = time.time() - 120
    for k in range(n):
        kind = MIX[k % len(MIX)]
        extra = {"value": float(1 + k % 5)} if kind in ("rate", "watch") else {}
        e = event(f"u{k % 97}", items[(k * 7) % len(items)], kind, f"kill-{k}", **extra)
        e["timestamp"] = base + k / 1000
        out.append(e)
    return out


def snapshot(client: SyncRedis, at: float) -> dict[bytes, Any]:
    """Every feature key's value (dedupe marks aside), trending scores decayed to ``at``."""
    ref = float(client.get(keys.TRENDING_REF) or 0.0)
    h = DEFAULT_STORE_CONFIG.trending_half_life_s
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=2000):
        if is_mark(key) or key == keys.TRENDING_REF:
            continue
        kind = client.type(key)
        if kind == b"string":
            out[key] = client.get(key)
        elif kind == b"hash":
            out[key] = {f: _number_or_text(v) for f, v in client.hgetall(key).items()}
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == b"set":
            out[key] = client.smembers(key)
        else:  # zset: trending is stored relative to trending:ref, so rescale it
            scale = 2.0 ** ((ref - at) / h) if key == keys.TRENDING else 1.0
            out[key] = {m: s * scale for m, s in client.zrange(key, 0, -1, withscores=True)}
    return out


def _number_or_text(value: bytes) -> float | bytes:
    try:
        return float(value)
    except ValueError:
        return value  # profile fields (gender, segment, ...)


def assert_same_state(got: dict[bytes, Any], want: dict[bytes, Any]) -> None:
    """Equal keys and values; float sums may differ in the last bits (other order)."""
    assert got.keys() == want.keys(), sorted(got.keys() ^ want.keys())[:10]
    for key, value in want.items():
        if isinstance(value, dict):
            assert got[key].keys() == value.keys(), key
            for f, v in value.items():
                same = got[key][f] == v or (
                    isinstance(v, float) and math.isclose(got[key][f], v, rel_tol=1e-9)
                )
                assert same, (key, f, got[key][f], v)
        else:
            assert got[key] == value, key


def test_sigkill_between_write_and_commit_then_restart_applies_every_event_once(
    stream: Stream, store_client: SyncRedis, redis_url: str, server_dir: Path
) -> None:
    """The kill lands after the worker's Redis write and before its offset commit: Redis holds
    writes for a moment (CLIENT PAUSE), the worker is frozen with its script call queued, the
    script runs, and only then is the worker killed. The restarted worker reads that batch
    again, and the store ends exactly as if every event had been applied once, no crash."""
    items = [f"k{k}" for k in range(40)]
    genres = (("Drama",), ("Comedy", "Action"))
    catalog = [ItemRecord(i, genres=genres[k % 2]) for k, i in enumerate(items)]
    profiles = [UserProfile(f"u{k}", age=20 + k % 40, gender="MF"[k % 2]) for k in range(0, 97, 3)]
    events = mixed_events(12_000, items)
    replays = events[:300]  # the same ids again: at-least-once delivery from a client retry
    reference = redis.Redis.from_url(db_url(redis_url, REFERENCE_DB))
    reference.flushdb()
    for client in (store_client, reference):
        StoreWriter(client).put_items(catalog)
        StoreWriter(client).put_users(profiles)
    stream.send(events + replays)
    env = {**stream.env, "CASCADE_INGEST_BATCH_SIZE": "200"}
    with running(service_spec("ingest", env), server_dir / "logs") as first:
        wait_until(lambda: marks(store_client), what="first batches")
        store_client.execute_command("CLIENT", "PAUSE", "1000", "WRITE")
        time.sleep(0.3)  # the worker reaches its next write and waits there
        os.killpg(first.pid, signal.SIGSTOP)
        held = marks(store_client)
        time.sleep(1.0)  # the pause ends: Redis runs the script the frozen worker queued
        applied = wait_until(lambda: _stable(lambda: marks(store_client)), 10, "the held write")
        os.killpg(first.pid, signal.SIGKILL)
        first.popen.wait(5)
    committed = stream.committed()
    assert committed <= held < applied < len(events), (committed, held, applied)
    with running(service_spec("ingest", env, port=free_port()), server_dir / "logs") as second:
        wait_until(lambda: marks(store_client) == len(events), 60, "every event applied")
        wait_until(lambda: metrics(second.spec.url)["cascade_ingest_consumer_lag{}"] == 0)
        m = metrics(second.spec.url)
    outcomes = {"applied": 0.0, "duplicate": 0.0}
    for key, value in m.items():
        if key.startswith("cascade_ingest_events_total{outcome="):
            outcomes[key.split("=")[1].split(",")[0]] += value
    assert outcomes["applied"] == len(events) - applied  # nothing applied twice...
    assert outcomes["duplicate"] == (applied - committed) + len(replays)  # ...re-reads found
    for k in range(0, len(events), 500):
        StoreWriter(reference).apply_events([Event.model_validate(e) for e in events[k : k + 500]])
    now = time.time()
    assert_same_state(snapshot(store_client, now), snapshot(reference, now))
    reference.close()


class CutOff(Exception):
    """The writer's process ends here, as under SIGKILL: nothing after this point runs."""


def die_in_round(writer: StoreWriter, at_round: int, kept: float) -> None:
    """Make the writer's ``at_round``-th pipelined round trip of per-slot script calls send
    only its first ``kept`` share of calls, then end the process (its ``ClusterIngest``)."""
    calls = writer._calls
    assert isinstance(calls, ClusterIngest)
    run, rounds = calls._calls, itertools.count(1)

    def dying(batch: list[Any]) -> list[Any]:
        if next(rounds) == at_round:
            run(batch[: int(len(batch) * kept)])
            raise CutOff
        return run(batch)

    calls._calls = dying  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("at_round", "kept"), [(2, 1.0), (3, 0.5)], ids=["after-the-item-part", "amid-the-user-parts"]
)
def test_a_cluster_batch_cut_off_between_its_slots_is_completed_by_the_retry(
    redis_cluster_url: str, redis_url: str, at_round: int, kept: float
) -> None:
    """On a Redis Cluster a batch is several script calls, one per slot (check the user slots,
    apply the item part, apply the user slots: shared/online_store/ingest_calls.py). The writer
    dies between two of them: after the item part, or with half the user slots written. The
    batch redelivered to a new writer applies exactly the parts without their marks, and the
    store ends as a single Redis that applied every event once, without a crash."""
    cluster = StoreTarget(redis_cluster_url, cluster=True).flushed()
    reference = redis.Redis.from_url(db_url(redis_url, REFERENCE_DB))
    reference.flushdb()
    items = [f"k{k}" for k in range(40)]
    genres = (("Drama",), ("Comedy", "Action"))
    for client in (cluster, reference):
        StoreWriter(client).put_items(
            [ItemRecord(i, genres=genres[k % 2]) for k, i in enumerate(items)]
        )
        StoreWriter(client).put_users(
            [UserProfile(f"u{k}", age=20 + k % 40, gender="MF"[k % 2]) for k in range(0, 97, 3)]
        )
    events = [Event.model_validate(e) for e in mixed_events(3000, items)]
    batches = [events[k : k + 500] for k in range(0, len(events), 500)]
    dying = StoreWriter(cluster)
    for batch in batches[:2]:
        dying.apply_events(batch)
    die_in_round(dying, at_round, kept)
    with pytest.raises(CutOff):
        dying.apply_events(batches[2])
    restarted = StoreWriter(cluster)
    retry = restarted.apply_events(batches[2])
    assert retry.applied + retry.duplicates == len(batches[2]) and not retry.rejected
    if kept < 1:  # the events of the user slots written before the cut have both their marks
        assert 0 < retry.duplicates < len(batches[2]), retry
    else:  # only item parts were written: every event still lacked its user part
        assert retry.duplicates == 0
    for batch in batches[3:]:
        restarted.apply_events(batch)
    again = restarted.apply_events(events[:300])  # a client's retry of ids applied before
    assert (again.applied, again.duplicates) == (0, 300)
    for batch in batches:
        StoreWriter(reference).apply_events(batch)
    now = time.time()
    assert_same_state(snapshot(cluster, now), snapshot(reference, now))
    user_marks = sum(1 for _ in cluster.scan_iter(match=b"{u:*}:ev:*", count=5000))
    assert applied_events(cluster) == user_marks == len(events)
    cluster.close()
    reference.close()


def marks(client: SyncRedis) -> int:
    """The number of distinct events applied (their dedupe marks)."""
    return applied_events(client)


def _stable(count: Callable[[], int], settle_s: float = 0.5) -> int:
    """The count once it stopped moving for ``settle_s`` (0 while it still moves)."""
    first = count()
    time.sleep(settle_s)
    return first if count() == first else 0


def test_redis_outage_shows_as_lag_and_not_ready_then_the_backlog_drains(
    stream: Stream, tmp_path: Path, start_service: ServiceStarter
) -> None:
    port = free_port()
    env = {**stream.env, "CASCADE_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    base = start_service("ingest", env)
    stream.send([event(f"u{k % 7}", f"i{k % 5}", "click") for k in range(500)])
    wait_until(lambda: metrics(base)["cascade_ingest_consumer_lag{}"] == 500, what="the lag")
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 503 and not ready.json()["checks"]["redis"]["ok"]
    assert not any(k.startswith("cascade_ingest_events_total") for k in metrics(base))
    with running(infra.redis_spec(port, tmp_path / "redis"), tmp_path / "logs"):
        wait_until(lambda: metrics(base)["cascade_ingest_consumer_lag{}"] == 0, what="drained")
        m = metrics(base)
        assert m["cascade_ingest_events_total{outcome=applied,type=click}"] == 500
        assert m["cascade_feature_freshness_seconds_count{}"] == 500
        client = redis.Redis(port=port)
        assert totals(client, [f"i{k}" for k in range(5)]) == [100] * 5
        client.close()
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200


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


def letters_of(stream: Stream, n: int) -> list[dict[str, Any]]:
    """The ``n`` dead letters of the stream, decoded."""
    found = wait_until(lambda: len(stream.dead_letters()) == n and stream.dead_letters())
    return [orjson.loads(r.value) for r in found]


def assert_each_applied_once(client: SyncRedis, users: list[str], items: list[str]) -> None:
    """One click per user, each in the user's hash, the item counters and segment popularity."""
    counts = [client.hget(f"{{u:{u}}}:h".encode(), b"n") for u in users]
    assert counts == [b"1"] * len(users)
    assert sum(totals(client, items)) == len(users)
    stored = sum(s or 0.0 for s in client.zmscore(keys.segment_popularity("all"), items))
    ref = float(client.hget(keys.SEGMENT_REFS, b"all") or 0.0)
    popularity = stored * 2 ** ((ref - time.time()) / DEFAULT_STORE_CONFIG.segment_half_life_s)
    assert popularity == pytest.approx(len(users) * click_weight(), rel=1e-3)  # clicks just now


def click_weight() -> float:
    """The engagement weight of one click (what it adds to trending and segment popularity)."""
    e = Event(event_id="w", user_id="w", item_id="w", type="click", timestamp=time.time())
    return float(orjson.loads(script_events([e], {}))[0][5])


def event_id_of(letter: dict[str, Any]) -> str:
    """The event id inside a dead letter's exact bytes."""
    return str(orjson.loads(base64.b64decode(letter["value_b64"]))["event_id"])


@on_node_and_cluster
def test_a_script_failing_halfway_through_a_batch_loses_nothing(
    stream: Stream, store_client: SyncRedis, start_service: ServiceStarter
) -> None:
    """A key of the wrong type fails the write that reaches it. The old script had written every
    dedupe mark and half the effects by then: the retry saw the marks, took the batch for
    duplicates and committed, losing the rest (issue 12 reproduced it with two ratings of 1e308
    overflowing a sum; the events API and the worker now refuse such ratings). Now nothing is
    written before every event was checked: the events that would write the bad key are
    dead-lettered with the key named, the others applied once."""
    items = [f"i{k}" for k in range(5)]
    StoreWriter(store_client).put_items([ItemRecord(i, genres=("Drama",)) for i in items])
    store_client.set(b"{u:r}:seenz", b"not a sorted set")  # written by the second phase only
    users = [f"g{k}" for k in range(30)]
    good = [event(u, items[k % 5], "click") for k, u in enumerate(users)]
    bad = [event("r", "ir", "click"), event("r", "ir", "like")]
    stream.send([*good[:10], *bad, *good[10:]], key=b"one-partition")
    start_service("ingest", env=stream.env, require_ready=True)
    wait_until(lambda: stream.committed() == 32, what="the batch committed")
    assert_each_applied_once(store_client, users, items)
    assert store_client.get(b"{u:r}:seenz") == b"not a sorted set"
    assert not store_client.exists(b"{u:r}:h") and not store_client.exists(keys.item_counters("ir"))
    letters = letters_of(stream, 2)
    assert {r["reason"] for r in letters} == {"key {u:r}:seenz holds a string, not a zset"}
    assert {event_id_of(r) for r in letters} == {e["event_id"] for e in bad}
    assert marks(store_client) == 30  # every applied event marked, the rejected ones not


def test_a_record_failing_in_its_handler_is_retried_then_dead_lettered_and_the_rest_applied(
    stream: Stream, store_client: SyncRedis, start_service: ServiceStarter
) -> None:
    """A record its handler fails on (its item's catalog record is not JSON: reading the
    item's genres raises) fails its batch on every retry; after the bounded retries it is found
    by halving and dead-lettered. (A key of the wrong type no longer fails the script: the
    event is rejected with the key named, test_a_script_failing_halfway_...)"""
    store_client.set(keys.item("ibad"), b"{not json")
    items = [f"i{k}" for k in range(5)]
    users = [f"g{k}" for k in range(20)]
    good = [event(u, items[k % 5], "click") for k, u in enumerate(users)]
    stream.send([*good[:10], event("bad", "ibad", "click"), *good[10:]], key=b"one-partition")
    env = {**stream.env, "CASCADE_INGEST_MAX_RETRIES": "1", "CASCADE_INGEST_RETRY_BACKOFF_S": "0.1"}
    base = start_service("ingest", env=env, require_ready=True)
    wait_until(lambda: stream.committed() == 21, what="the batch committed")
    assert_each_applied_once(store_client, users, items)
    (letter,) = letters_of(stream, 1)
    assert letter["reason"].startswith("handler failed after 3 attempt(s): JSONDecodeError: ")
    assert letter["offset"] == 10
    assert not store_client.exists(keys.event(event_id_of(letter)))
    m = metrics(base)
    assert m[f"cascade_consumer_dead_letters_total{{consumer={stream.group},reason=handler}}"] == 1
    assert m[f"cascade_consumer_retries_total{{consumer={stream.group}}}"] == 2
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200 and "dead-lettered 1 poison record(s)" in ready.text
