"""The shared Kafka helpers against a real broker: consumer groups, commit-after-success."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from shared.stream.consumer_loop import ConsumerLoop
from shared.stream.producer import create_producer, send_all
from shared.stream.topic_keeper import ensure_topics

pytestmark = pytest.mark.integration

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000}


def _produce(bootstrap: str, topic: str, values: range) -> None:
    producer = create_producer(bootstrap)
    for v in values:
        producer.send(topic, key=str(v % 3).encode(), value=str(v).encode())
    producer.flush()
    producer.close()


def _run_until(loop: ConsumerLoop, done: Callable[[], bool], timeout_s: float = 40.0) -> None:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.stop()
    thread.join(15)
    assert not thread.is_alive(), "consumer loop did not stop"
    assert done(), f"timed out; stats={loop.stats}"


async def test_send_all_waits_for_broker_ack(kafka_bootstrap: str, unique_topic: str) -> None:
    ensure_topics(kafka_bootstrap, {unique_topic: 2})
    producer = create_producer(kafka_bootstrap)
    await send_all(producer, unique_topic, [(b"u1", b"a"), (b"u2", b"b")])
    seen: list[bytes] = []
    loop = ConsumerLoop(
        kafka_bootstrap,
        [unique_topic],
        "ack-check",
        lambda b: seen.extend(r.value for r in b),
        **FAST_GROUP,
    )
    _run_until(loop, lambda: len(seen) >= 2)
    producer.close()
    assert sorted(seen) == [b"a", b"b"]


def test_restart_resumes_from_committed_offset(kafka_bootstrap: str, unique_topic: str) -> None:
    """Commits happen after the handler; a new loop in the group continues, losing nothing."""
    ensure_topics(kafka_bootstrap, {unique_topic: 3})
    _produce(kafka_bootstrap, unique_topic, range(0, 300))
    first: list[int] = []
    loop = ConsumerLoop(
        kafka_bootstrap,
        [unique_topic],
        "resume",
        lambda b: first.extend(int(r.value) for r in b),
        max_records=50,
        **FAST_GROUP,
    )
    _run_until(loop, lambda: len(first) >= 300)

    _produce(kafka_bootstrap, unique_topic, range(300, 400))
    second: list[int] = []
    loop2 = ConsumerLoop(
        kafka_bootstrap,
        [unique_topic],
        "resume",
        lambda b: second.extend(int(r.value) for r in b),
        **FAST_GROUP,
    )
    _run_until(loop2, lambda: len(second) >= 100)
    assert sorted(first) == list(range(300))
    assert sorted(second) == list(range(300, 400)), "re-read committed records or lost some"


def test_failed_batch_is_retried_not_skipped(kafka_bootstrap: str, unique_topic: str) -> None:
    ensure_topics(kafka_bootstrap, {unique_topic: 1})
    _produce(kafka_bootstrap, unique_topic, range(20))
    handled: list[int] = []
    failures = {"left": 2}

    def flaky(batch: list[ConsumerRecord]) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("redis write failed")
        handled.extend(int(r.value) for r in batch)

    loop = ConsumerLoop(
        kafka_bootstrap, [unique_topic], "flaky", flaky, retry_backoff_s=0.05, **FAST_GROUP
    )
    _run_until(loop, lambda: len(handled) >= 20)
    assert sorted(handled) == list(range(20))
    assert loop.stats.failures == 2


def test_unreachable_broker_does_not_raise(unique_topic: str) -> None:
    """A worker started before its broker keeps trying and records why it cannot consume."""
    loop = ConsumerLoop("127.0.0.1:1", [unique_topic], "nobody", lambda b: None)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not loop.stats.last_error and time.monotonic() < deadline:
        time.sleep(0.1)
    loop.stop()
    thread.join(15)
    assert "kafka unreachable" in loop.stats.last_error


def test_a_failed_write_in_flight_is_retried_with_what_came_after(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    """Handlers that return a Future (the write runs on another thread while the next batch is
    read): a failed one rewinds to its batch, on every partition, and nothing is skipped."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    ensure_topics(kafka_bootstrap, {unique_topic: 3})
    _produce(kafka_bootstrap, unique_topic, range(600))
    written: list[int] = []
    calls = {"n": 0}
    pool = ThreadPoolExecutor(max_workers=1)

    def write(values: list[int], fail: bool) -> None:
        time.sleep(0.005)  # long enough for the next batch to be handed over meanwhile
        if fail:
            raise ConnectionError("redis write failed")
        written.extend(values)

    def handler(batch: list[ConsumerRecord]) -> Future[None]:
        calls["n"] += 1
        return pool.submit(write, [int(r.value) for r in batch], calls["n"] == 3)

    group = f"async-{unique_topic}"
    loop = ConsumerLoop(
        kafka_bootstrap, [unique_topic], group, handler, max_records=25,
        retry_backoff_s=0.05, **FAST_GROUP,
    )  # fmt: skip
    _run_until(loop, lambda: set(written) == set(range(600)))  # stopping settles the last
    pool.shutdown()
    assert loop.stats.failures == 1
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    parts = [TopicPartition(unique_topic, p) for p in range(3)]
    committed = sum(consumer.committed(tp) or 0 for tp in parts)
    consumer.close()
    assert committed == 600  # every batch committed once its write was done
