"""The batch handler of the ingest worker: decode, dead-letter, apply to Redis, measure."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from kafka.consumer.fetcher import ConsumerRecord

from services.ingest.dead_letters import DeadLetterSink
from services.ingest.metrics import BATCH_SIZE, BATCH_WRITE, CONSUMER_LAG, EVENTS, FRESHNESS
from shared.events import Event, MalformedEventError, decode_event
from shared.online_store.writer import ApplyResult, StoreWriter

DeadLetters = list[tuple[ConsumerRecord, str]]


def decode_batch(records: list[ConsumerRecord]) -> tuple[list[Event], DeadLetters]:
    """Split a batch into decoded events and (record, reason) of malformed messages."""
    events: list[Event] = []
    bad: DeadLetters = []
    for rec in records:
        if not rec.value:
            bad.append((rec, "empty message"))
            continue
        try:
            events.append(decode_event(rec.value))
        except MalformedEventError as exc:
            bad.append((rec, exc.reason))
    return events, bad


class EventIngestor:
    """Applies each consumed batch with one atomic store write; raising means 'retry the batch'.

    Malformed messages are dead-lettered before the write, so a committed batch never drops one.
    """

    def __init__(
        self,
        writer: StoreWriter,
        dead_letters: DeadLetterSink,
        lag: Callable[[], int | None] | None = None,
        lag_interval_s: float = 2.0,
    ) -> None:
        self.writer = writer
        self.dead_letters = dead_letters
        self.lag = lag
        self.lag_interval_s = lag_interval_s
        self._lag_at = 0.0

    def __call__(self, records: list[ConsumerRecord]) -> None:
        """Handle one batch (the ConsumerLoop commits only after this returns)."""
        BATCH_SIZE.observe(len(records))
        events, bad = decode_batch(records)
        if bad:
            self.dead_letters.send(bad)
        if events:
            start = time.perf_counter()
            result = self.writer.apply_events(events)
            BATCH_WRITE.observe(time.perf_counter() - start)
            self._observe(events, result, time.time())
        self._update_lag()

    def _observe(self, events: list[Event], result: ApplyResult, written_at: float) -> None:
        outcomes = Counter(
            (e.type, "applied" if flag == 49 else "duplicate")  # 49: ord("1")
            for e, flag in zip(events, result.mask, strict=True)
        )
        for (event_type, outcome), n in outcomes.items():
            EVENTS.labels(event_type, outcome).inc(n)
        for e in events:
            if e.accepted_ts is not None:
                FRESHNESS.observe(max(0.0, written_at - e.accepted_ts))

    def _update_lag(self) -> None:
        now = time.monotonic()
        if self.lag is None or now - self._lag_at < self.lag_interval_s:
            return
        self._lag_at = now
        lag = self.lag()
        if lag is not None:
            CONSUMER_LAG.set(lag)
