"""Dead letters: records on ``events`` that a consumer cannot use go to ``events.dlq``.

A record is dead-lettered when it does not decode, when the store refuses its effects, or when
it keeps failing in a handler (the consumer loop retries a failing batch a bounded number of
times, then halves it until the failing records are alone, and dead-letters those).

Every consumer of the events topic (the ingest worker, the offline sink) decodes its records
with :func:`decode_records` and forwards the bad ones with one :class:`DeadLetterWriter`, so
the dead-letter topic holds one message format (``shared.events.encode_dead_letter``: the
reason, who gave up, where the record was, and its exact bytes).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from shared.events import Event, MalformedEventError, decode_event, encode_dead_letter
from shared.stream.metrics import DEAD_LETTERS
from shared.stream.producer import LazyProducer
from shared.stream.topic_keeper import TopicKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """A record and why it was rejected; ``kind`` labels the metric (malformed, rejected,
    handler)."""

    record: ConsumerRecord
    reason: str
    kind: str = "malformed"


def decode_records(
    records: Sequence[ConsumerRecord], max_future_s: float | None = None
) -> tuple[list[tuple[ConsumerRecord, Event]], list[DeadLetter]]:
    """Split records into (record, event) pairs and dead letters naming the bad field.

    ``max_future_s`` rejects timestamps further ahead of this clock than the events API
    allows: another producer's far-future event would otherwise move the counter rings and
    the trending reference ahead and silently wipe the windows.
    """
    good: list[tuple[ConsumerRecord, Event]] = []
    bad: list[DeadLetter] = []
    for rec in records:
        try:
            good.append((rec, decode_event(rec.value, max_future_s)))
        except MalformedEventError as exc:
            bad.append(DeadLetter(rec, exc.reason))
    return good, bad


class DeadLetterWriter:
    """Blocking writer (it runs on the consumer thread): returns once the broker has them all.

    A failure raises, so the consumer loop retries the whole batch rather than commit past a
    record that is neither applied nor in the dead-letter topic. The topic is created at the
    first letter, and checked again after a failed send (a restarted broker may have lost it).
    """

    def __init__(self, bootstrap: str, topic: str, source: str, timeout_s: float) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.source = source
        self.timeout_s = timeout_s
        self.producer = LazyProducer(bootstrap)
        self.topics = TopicKeeper(bootstrap, {topic: 1}, timeout_s)

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Write every letter (acks=all) or raise."""
        if not letters:
            return
        self.topics.ensure()
        try:
            producer = self.producer.get()
            futures = [
                producer.send(self.topic, key=dl.record.key, value=self._encode(dl))
                for dl in letters
            ]
            for fut in futures:
                fut.get(timeout=self.timeout_s)
        except (KafkaError, OSError):
            self.topics.forget()  # a restarted broker may have lost the topic: the retry re-checks
            raise
        for kind, n in Counter(dl.kind for dl in letters).items():
            DEAD_LETTERS.labels(self.source, kind).inc(n)
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
