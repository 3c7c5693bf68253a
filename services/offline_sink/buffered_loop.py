"""A consumer loop that gathers records across polls, so the sink writes few, large files."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from services.offline_sink.metrics import CONSUMER_LAG
from shared.kafka import ConsumerLoop

log = logging.getLogger(__name__)


class BufferedConsumerLoop(ConsumerLoop):
    """The shared loop's contract (handle, then commit; rewind on failure), over bigger batches.

    Records are buffered until ``flush_records`` are held or the oldest has waited
    ``flush_interval_s``; then the handler gets them all and the offsets are committed only
    after it returned. On stop the buffer is flushed and committed before the consumer closes.
    """

    def __init__(
        self, *args: Any, flush_records: int, flush_interval_s: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.flush_records = flush_records
        self.flush_interval_s = flush_interval_s

    @property
    def connected(self) -> bool:
        """True while a consumer exists (it reconnects by itself after a broker outage)."""
        return self._consumer is not None

    def pause(self, seconds: float) -> None:
        """Sleep, waking early when stop() is called."""
        self._stop.wait(seconds)

    def _poll_until_stopped(self, consumer: KafkaConsumer) -> None:
        buffer: dict[TopicPartition, list[ConsumerRecord]] = {}
        held, first_at = 0, 0.0
        while not self._stop.is_set():
            wait_s = self.poll_timeout_ms / 1000
            if held:
                wait_s = min(wait_s, max(0.0, first_at + self.flush_interval_s - time.monotonic()))
            polled = consumer.poll(timeout_ms=int(wait_s * 1000), max_records=self.max_records)
            self.stats.assigned = set(consumer.assignment())
            if polled and not held:
                first_at = time.monotonic()
            for tp, records in polled.items():
                buffer.setdefault(tp, []).extend(records)
                held += len(records)
            due = held and time.monotonic() - first_at >= self.flush_interval_s
            if held >= self.flush_records or due:
                self._flush(consumer, buffer)
                buffer, held = {}, 0
        if held:
            self._flush(consumer, buffer)  # graceful stop: keep what was read, then commit

    def _flush(
        self, consumer: KafkaConsumer, buffer: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        batch = [rec for records in buffer.values() for rec in records]
        if not self._handle(batch):
            for tp, records in buffer.items():
                consumer.seek(tp, records[0].offset)
            self._stop.wait(self.retry_backoff_s)
            return
        try:
            consumer.commit()
        except KafkaError as exc:
            # The data is already durable; another member re-reads it and the log dedupes.
            log.warning("commit failed after a durable write", extra={"error": repr(exc)})
        lag = self.lag()
        if lag is not None:
            CONSUMER_LAG.set(lag)
