"""Dead-letter sink: malformed messages go to their own topic with the reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafka.consumer.fetcher import ConsumerRecord

from services.ingest.metrics import DEAD_LETTERS
from shared.kafka import LazyProducer

log = logging.getLogger(__name__)


class DeadLetterSink:
    """Forwards bad records (original key and bytes) with ``reason`` and ``source`` headers."""

    def __init__(self, producer: LazyProducer, topic: str, timeout_s: float = 10.0) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    def send(self, bad: Sequence[tuple[ConsumerRecord, str]]) -> None:
        """Send and wait for the broker's ack; raises on failure so the batch is retried."""
        producer = self.producer.get()
        futures = []
        for rec, reason in bad:
            headers = [
                ("reason", reason.encode()),
                ("source", f"{rec.topic}/{rec.partition}/{rec.offset}".encode()),
            ]
            value = rec.value if rec.value is not None else b""
            futures.append(producer.send(self.topic, key=rec.key, value=value, headers=headers))
        for fut in futures:
            fut.get(timeout=self.timeout_s)
        DEAD_LETTERS.inc(len(bad))
        log.warning("malformed messages dead-lettered", extra={"n": len(bad), "topic": self.topic})
