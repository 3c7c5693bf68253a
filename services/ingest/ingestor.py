"""The batch handler of the ingest worker: decode, dead-letter, apply to Redis, measure."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import Executor, Future

from kafka.consumer.fetcher import ConsumerRecord

from services.ingest.metrics import BATCH_SIZE, BATCH_WRITE, DEAD_LETTERS, EVENTS, FRESHNESS
from shared.events import Event
from shared.online_store.writer import ApplyResult, PreparedBatch, StoreWriter
from shared.stream.dead_letters import DeadLetter, DeadLetterWriter, decode_records

_APPLIED, _REJECTED = ord("1"), ord("2")  # the store's per-event mask (b"0": a duplicate)


class EventIngestor:
    """Applies each consumed batch with one atomic store write; raising means 'retry the batch'.

    Malformed messages are dead-lettered before the write, so a committed batch never drops one;
    events whose effects the store refused (it wrote nothing of them) are dead-lettered after it.
    With a ``writer_pool`` (one thread) the write runs there and a Future is returned: the
    consumer loop polls and prepares the next batch meanwhile and commits this one only once
    the Future is done, so Redis and Python work in parallel and the writes stay in order.
    """

    def __init__(
        self,
        writer: StoreWriter,
        dead_letters: DeadLetterWriter,
        max_future_s: float | None,
        writer_pool: Executor | None = None,
    ) -> None:
        self.writer = writer
        self.dead_letters = dead_letters
        self.max_future_s = max_future_s
        self.writer_pool = writer_pool

    def __call__(self, records: list[ConsumerRecord]) -> Future[None] | None:
        """Handle one batch: None once written, or the Future of its write."""
        BATCH_SIZE.observe(len(records))
        good, bad = decode_records(records, self.max_future_s)
        if bad:
            self.dead_letters.send(bad)
            DEAD_LETTERS.inc(len(bad))
        if not good:
            return None
        args = self.writer.prepare([event for _, event in good])
        if self.writer_pool is None:
            self._write(good, args)
            return None
        return self.writer_pool.submit(self._write, good, args)

    def _write(self, good: list[tuple[ConsumerRecord, Event]], args: PreparedBatch) -> None:
        start = time.perf_counter()
        result = self.writer.apply_prepared(args)
        BATCH_WRITE.observe(time.perf_counter() - start)
        if result.rejected:
            records = [rec for (rec, _), flag in zip(good, result.mask, strict=True)
                       if flag == _REJECTED]  # fmt: skip
            letters = [DeadLetter(rec, why, kind="rejected")
                       for rec, why in zip(records, result.rejected, strict=True)]  # fmt: skip
            self.dead_letters.send(letters)
        self._observe([event for _, event in good], result, time.time())

    @staticmethod
    def _observe(events: list[Event], result: ApplyResult, written_at: float) -> None:
        """Outcome counters, and freshness of the events whose effect this write made readable
        (a duplicate's effect was readable long before; it would only blur the histogram)."""
        outcomes: Counter[tuple[str, str]] = Counter()
        for e, flag in zip(events, result.mask, strict=True):
            applied = flag == _APPLIED
            outcome = "applied" if applied else "rejected" if flag == _REJECTED else "duplicate"
            outcomes[e.type, outcome] += 1
            if applied and e.accepted_ts is not None:
                FRESHNESS.observe(max(0.0, written_at - e.accepted_ts))
        for (event_type, outcome), n in outcomes.items():
            EVENTS.labels(event_type, outcome).inc(n)
