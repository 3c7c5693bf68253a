"""ServedLog: the served lists go to Kafka from a background thread, never from the request.

The request path only puts a serialised record on a bounded queue (put_nowait). When the
broker is slow or down the queue fills and records are dropped and counted: a broker outage
costs log records, never latency or errors. The sender thread wakes every ``FLUSH_S`` and
sends what has queued rather than waking for each record (taking the GIL from the event loop a
hundred times a second; the log as a whole measured 0.2-0.45 ms of the gateway's CPU per
request at 100 req/s, and the producer batches for 250 ms anyway). It creates the topic when
it is missing (at its first record, and again after a failure: a restarted broker may have
lost it).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import orjson
from kafka.errors import KafkaError
from prometheus_client import Counter

from shared.stream.producer import LazyProducer
from shared.stream.topic_keeper import TopicKeeper

log = logging.getLogger(__name__)

SERVED_LOG = Counter(
    "cascade_served_log_total", "Served-list records by outcome.", ["outcome"]
)  # outcome: queued, sent, dropped (queue full), failed (broker error)

FLUSH_S = 0.05  # the sender's wake-up period; far below the producer's 250 ms linger


class ServedLog:
    """Bounded queue + one sender thread (kafka-python's send may block on metadata)."""

    def __init__(
        self, producer: LazyProducer, topic: str, max_queue: int = 10_000, partitions: int = 1
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.topics = TopicKeeper(producer.bootstrap, {topic: partitions}, timeout_s=3.0)
        self._queue: queue.Queue[tuple[bytes, bytes]] = queue.Queue(maxsize=max_queue)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)

    def start(self) -> None:
        """Start the sender thread."""
        self._thread.start()

    def log(self, user_id: str, record: dict[str, Any]) -> None:
        """Queue one record (keyed by user id); drop it if the queue is full."""
        try:
            self._queue.put_nowait((user_id.encode(), orjson.dumps(record)))
            SERVED_LOG.labels("queued").inc()
        except queue.Full:
            SERVED_LOG.labels("dropped").inc()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            stopping = self._stopping.wait(FLUSH_S)
            while True:
                try:
                    key, value = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._send(key, value)

    def _send(self, key: bytes, value: bytes) -> None:
        try:
            self.topics.ensure()
            future = self.producer.get().send(self.topic, key=key, value=value)
            future.add_callback(lambda _meta: SERVED_LOG.labels("sent").inc())
            future.add_errback(self._failed)
        except (KafkaError, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        """Count and log a lost record; the next record re-checks the topic."""
        self.topics.forget()
        SERVED_LOG.labels("failed").inc()
        log.warning("served log send failed", extra={"error": repr(exc)})

    async def stop(self) -> None:
        """Let the thread finish what is queued (bounded by the producer's own timeouts)."""
        if not self._thread.is_alive():
            return
        self._stopping.set()
        await asyncio.to_thread(self._thread.join, 5.0)
