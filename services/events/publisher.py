"""Writes validated events to Kafka and reports success only once the broker has all of them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence

from kafka.errors import KafkaError

from services.events.metrics import BATCH_SIZE, EVENTS_ACCEPTED, PRODUCE_LATENCY
from shared.events import Event, encode_event
from shared.stream.producer import LazyProducer, send_all
from shared.stream.topic_keeper import TopicKeeper

log = logging.getLogger(__name__)


class BrokerUnavailableError(RuntimeError):
    """The broker did not acknowledge the batch; nothing may be reported as accepted."""


class EventPublisher:
    """Produces events keyed by user_id (one user's events stay ordered on one partition).

    Every message carries ``accepted_ts``, this server's clock when the batch was accepted, so
    consumers can measure freshness from acceptance to effect.
    """

    def __init__(
        self, producer: LazyProducer, topic: str, topics: TopicKeeper, timeout_s: float
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.topics = topics
        self.timeout_s = timeout_s

    async def publish(self, events: Sequence[Event]) -> int:
        """Send all events with acks=all; return how many; raise BrokerUnavailableError."""
        topic_ok, reason = self.topics.status()
        if not topic_ok:
            raise BrokerUnavailableError(reason or "events topic not ready")
        accepted_ts = time.time()
        messages = [(e.user_id.encode(), encode_event(e, accepted_ts)) for e in events]
        start = time.perf_counter()
        try:
            producer = await asyncio.to_thread(self.producer.get)
            # A little slack so the producer's own delivery timeout (same value) reports first.
            await send_all(producer, self.topic, messages, self.timeout_s + 0.5)
        except (KafkaError, OSError, TimeoutError) as exc:
            # The broker may have restarted without the topic.
            self.topics.forget("re-checking the topic after a failed produce")
            log.warning("produce failed", extra={"error": repr(exc), "n": len(events)})
            raise BrokerUnavailableError(f"broker did not acknowledge the batch: {exc!r}") from exc
        PRODUCE_LATENCY.observe(time.perf_counter() - start)
        self._count(events)
        return len(events)

    @staticmethod
    def _count(events: Sequence[Event]) -> None:
        BATCH_SIZE.observe(len(events))
        for event_type, n in Counter(e.type for e in events).items():
            EVENTS_ACCEPTED.labels(event_type).inc(n)
