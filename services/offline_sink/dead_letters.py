"""Sends records that cannot be used to the dead-letter topic, with the reason."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from shared.events import encode_dead_letter
from shared.kafka import LazyProducer, ensure_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """A record and why it was rejected."""

    record: ConsumerRecord
    reason: str


class DeadLetterWriter:
    """Blocking writer (it runs on the consumer thread): returns once the broker has them all.

    A failure raises, so the consumer loop retries the whole batch rather than commit past a
    record that is neither in the Parquet log nor in the dead-letter topic.
    """

    def __init__(self, bootstrap: str, topic: str, source: str, timeout_s: float) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.source = source
        self.timeout_s = timeout_s
        self.producer = LazyProducer(bootstrap)
        self._topic_ready = False

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Write every letter (acks=all) or raise."""
        if not letters:
            return
        if not self._topic_ready:
            ensure_topics(self.bootstrap, {self.topic: 1}, self.timeout_s)
            self._topic_ready = True
        producer = self.producer.get()
        futures = [
            producer.send(self.topic, key=dl.record.key, value=self._encode(dl)) for dl in letters
        ]
        for fut in futures:
            fut.get(timeout=self.timeout_s)
        log.warning("dead-lettered records", extra={"n": len(letters), "reason": letters[0].reason})

    def _encode(self, letter: DeadLetter) -> bytes:
        rec = letter.record
        return encode_dead_letter(
            rec.value, letter.reason, source=self.source, topic=rec.topic,
            partition=rec.partition, offset=rec.offset, key=rec.key,
        )  # fmt: skip

    def close(self) -> None:
        """Close the producer (records it could not flush were never acknowledged to anyone)."""
        with contextlib.suppress(KafkaError):
            self.producer.close()
