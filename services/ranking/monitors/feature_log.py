"""FeatureLog: sampled served features to a Kafka topic, flushed off the request path.

``log`` appends to a bounded deque (the oldest record goes when it is full: counted, never
waited for); a background task hands what accumulated to a worker thread once a second,
which makes sure the topic exists and sends. A broker outage costs records, never latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import orjson
from kafka.errors import KafkaError
from prometheus_client import Counter

from shared.stream.producer import LazyProducer
from shared.stream.topic_keeper import TopicKeeper

log = logging.getLogger(__name__)

FEATURE_LOG = Counter(
    "cascade_feature_log_total", "Served-feature samples by outcome.", ["outcome"]
)  # outcome: queued, sent, dropped (buffer full), failed (broker error)


class FeatureLog:
    """Bounded buffer of (key, record) flushed to ``topic`` by ``flush_forever``."""

    def __init__(self, producer: LazyProducer, topic: str, max_buffer: int = 2000) -> None:
        self.producer = producer
        self.topic = topic
        self.topics = TopicKeeper(producer.bootstrap, {topic: 1}, timeout_s=3.0)
        self._buffer: deque[tuple[bytes, bytes]] = deque(maxlen=max_buffer)

    def log(self, key: str, record: dict[str, Any]) -> None:
        """Buffer one record (the oldest is dropped when the buffer is full)."""
        if len(self._buffer) == self._buffer.maxlen:
            FEATURE_LOG.labels("dropped").inc()
        self._buffer.append((key.encode(), orjson.dumps(record)))
        FEATURE_LOG.labels("queued").inc()

    async def flush_forever(self, every_s: float = 1.0) -> None:
        """Send what accumulated every ``every_s`` (until cancelled)."""
        while True:
            await asyncio.sleep(every_s)
            await self.flush()

    async def flush(self) -> None:
        """Send the buffered records now (on a worker thread: sends may block on metadata)."""
        batch = [self._buffer.popleft() for _ in range(len(self._buffer))]
        if batch:
            await asyncio.to_thread(self._send, batch)

    def _send(self, batch: list[tuple[bytes, bytes]]) -> None:
        try:
            self.topics.ensure()
            producer = self.producer.get()
            futures = [producer.send(self.topic, key=k, value=v) for k, v in batch]
            producer.flush(timeout=5)
            failed = sum(1 for f in futures if not f.succeeded())
            FEATURE_LOG.labels("sent").inc(len(batch) - failed)
            if failed:
                self.topics.forget()
                FEATURE_LOG.labels("failed").inc(failed)
        except (KafkaError, OSError) as exc:
            self.topics.forget()
            FEATURE_LOG.labels("failed").inc(len(batch))
            log.warning("feature log send failed", extra={"error": repr(exc)})
