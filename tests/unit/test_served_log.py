"""ServedLog: records reach the producer in order from the sender thread, stop() sends what is
queued, a full queue drops and counts, a broker error counts and makes the next record check
the topic again. The producer here is a stand-in; tests/integration/test_serving_stack.py
reads the served topic of a real broker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from kafka.errors import KafkaError

from services.gateway.served_log import SERVED_LOG, ServedLog


class _Future:
    def add_callback(self, fn: Any) -> _Future:
        fn(None)  # delivered at once
        return self

    def add_errback(self, fn: Any) -> _Future:
        return self


class _Producer:
    """What ServedLog uses of a KafkaProducer (``send``), recording the calls and the thread."""

    bootstrap = "127.0.0.1:1"

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.threads: set[str] = set()
        self.fail = fail

    def get(self) -> _Producer:
        return self

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise KafkaError("broker down")
        self.sent.append((topic, key, value))
        return _Future()


class _Topics:
    def __init__(self) -> None:
        self.ensured = 0
        self.forgotten = 0

    def ensure(self) -> None:
        self.ensured += 1

    def forget(self) -> None:
        self.forgotten += 1


def _count(outcome: str) -> float:
    return SERVED_LOG.labels(outcome)._value.get()  # type: ignore[attr-defined,no-any-return]


def _served_log(producer: _Producer, max_queue: int = 100) -> tuple[ServedLog, _Topics]:
    served = ServedLog(producer, "served", max_queue)  # type: ignore[arg-type]
    topics = _Topics()
    served.topics = topics  # type: ignore[assignment]
    return served, topics


def test_records_are_sent_in_order_from_the_sender_thread_and_stop_drains() -> None:
    producer = _Producer()
    served, topics = _served_log(producer)
    served.start()
    sent_before = _count("sent")
    for i in range(30):
        served.log(str(i), {"request_id": f"r{i}"})
    asyncio.run(served.stop())  # at once: stop must not lose what is queued
    assert [key for _, key, _ in producer.sent] == [str(i).encode() for i in range(30)]
    assert producer.sent[3][2] == b'{"request_id":"r3"}'
    assert producer.threads == {"served-log"}
    assert topics.ensured == 30
    assert _count("sent") - sent_before == 30


def test_the_sender_sends_while_running_within_its_period() -> None:
    producer = _Producer()
    served, _ = _served_log(producer)
    served.start()
    served.log("7", {"request_id": "x"})
    deadline = time.monotonic() + 2.0
    while not producer.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert producer.sent, "a record waited more than 2 s for its sender"
    asyncio.run(served.stop())


def test_a_full_queue_drops_and_counts() -> None:
    producer = _Producer()
    served, _ = _served_log(producer, max_queue=5)  # not started: nothing drains the queue
    dropped_before = _count("dropped")
    for i in range(8):
        served.log(str(i), {"n": i})
    assert _count("dropped") - dropped_before == 3
    served.start()
    asyncio.run(served.stop())
    assert [key for _, key, _ in producer.sent] == [str(i).encode() for i in range(5)]


def test_a_broker_error_is_counted_and_the_topic_checked_again() -> None:
    served, topics = _served_log(_Producer(fail=True))
    failed_before = _count("failed")
    served.start()
    served.log("1", {"n": 1})
    served.log("2", {"n": 2})
    asyncio.run(served.stop())
    assert _count("failed") - failed_before == 2
    assert topics.forgotten == 2
