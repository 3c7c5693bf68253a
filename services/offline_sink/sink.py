"""The sink's batch handler: decode, append valid events to Parquet, dead-letter the rest."""

from __future__ import annotations

import logging
import time
from collections import Counter

from kafka.consumer.fetcher import ConsumerRecord

from services.offline_sink.metrics import (
    DEAD_LETTERS,
    EVENTS_WRITTEN,
    FILES_WRITTEN,
    FLUSH_DURATION,
    FLUSH_SIZE,
)
from shared.offline_store.writer import LoggedEvent, ParquetEventWriter
from shared.stream.dead_letters import DeadLetterWriter, decode_records

log = logging.getLogger(__name__)


class OfflineSink:
    """Handles one buffered batch; returns only once everything is durable.

    Valid events go to fsynced Parquet files, malformed records to the dead-letter topic (acked);
    any failure raises so the loop retries the batch instead of committing past it.
    """

    def __init__(
        self,
        writer: ParquetEventWriter,
        dead_letters: DeadLetterWriter,
        max_future_s: float | None = None,
    ) -> None:
        self.writer = writer
        self.dead_letters = dead_letters
        self.max_future_s = max_future_s

    def handle(self, records: list[ConsumerRecord]) -> None:
        """The ConsumerLoop handler."""
        start = time.perf_counter()
        decoded, bad = decode_records(records, self.max_future_s)
        good = [LoggedEvent(event, rec.partition, rec.offset) for rec, event in decoded]
        files = self.writer.write(good)
        self.dead_letters.send(bad)
        elapsed = time.perf_counter() - start
        self._observe(good, len(bad), len(files), len(records), elapsed)
        extra = {"events": len(good), "dead": len(bad), "files": len(files), "s": elapsed}
        log.info("flushed", extra=extra)

    @staticmethod
    def _observe(good: list[LoggedEvent], dead: int, files: int, n: int, elapsed: float) -> None:
        for event_type, count in Counter(row.event.type for row in good).items():
            EVENTS_WRITTEN.labels(event_type).inc(count)
        DEAD_LETTERS.inc(dead)
        FILES_WRITTEN.inc(files)
        FLUSH_SIZE.observe(n)
        FLUSH_DURATION.observe(elapsed)
