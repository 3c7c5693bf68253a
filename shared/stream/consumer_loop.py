"""The consumer loop: poll a batch, hand it to a handler, commit only after it succeeded.

The consumer loop has one shape (poll a batch, handle it, commit only after the handler
succeeded), so every worker gets at-least-once delivery; handlers make it exactly-once in effect
by being idempotent. SIGTERM stops the loop after the batch in hand, with a final commit.
A batch that keeps failing for a reason of its own records is retried a bounded number of
times, then its poison records are found and dead-lettered (``shared.stream.poison``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from shared.stream.dead_letters import DeadLetterWriter
from shared.stream.metrics import FAILURES_IN_A_ROW, RETRIES
from shared.stream.poison import PoisonFinder

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord]], "Future[Any] | None"]
"""Handles a batch: returns None when its effect is complete, or a Future that completes with
it (meanwhile the loop polls and hands over the next batch; it commits only once it is done)."""


@dataclass
class ConsumerLoopStats:
    """Counters a worker exposes through its metrics and readiness."""

    batches: int = 0
    records: int = 0
    failures: int = 0
    last_error: str = ""
    commit_failures: int = 0
    failures_in_a_row: int = 0
    dead_lettered: int = 0
    last_dead_letter: str = ""
    lag: int | None = None
    assigned: set[TopicPartition] = field(default_factory=set)


@dataclass(frozen=True)
class _Span:
    """Where a batch lies: first and next offset per partition, and how many records."""

    start: dict[TopicPartition, int]
    end: dict[TopicPartition, int]
    records: int

    def before(self, later: _Span | None) -> _Span:
        """This span extended with a later batch's partitions that this one lacks (to rewind)."""
        if later is None:
            return self
        start = {**{tp: o for tp, o in later.start.items() if tp not in self.start}, **self.start}
        return _Span(start, self.end, self.records)

    @classmethod
    def of(cls, buffer: dict[TopicPartition, list[ConsumerRecord]]) -> _Span:
        return cls(
            start={tp: recs[0].offset for tp, recs in buffer.items()},
            end={tp: recs[-1].offset + 1 for tp, recs in buffer.items()},
            records=sum(len(recs) for recs in buffer.values()),
        )


def _drain(future: Future[Any]) -> None:
    """Let a batch's write finish (or never start) before its records are read again."""
    if not future.cancel():
        with contextlib.suppress(Exception):
            future.result()


def lag_value(loop: ConsumerLoop) -> float:
    """The loop's last measured lag for a gauge: NaN while the broker does not answer."""
    lag = loop.stats.lag
    return float("nan") if lag is None else float(lag)


class ConsumerLoop:
    """Consumer-group loop: poll a batch, hand it to ``handler``, commit only after success.

    Records may be gathered across polls (``flush_records`` / ``flush_interval_s``) so a sink
    writes few large files; by default every poll is handled at once. On a handler failure
    nothing is committed and each partition is rewound to the first record of the failed
    batch, so the batch is retried (after a back-off) instead of lost. A failed commit (e.g.
    after a rebalance) is logged, not fatal: the new owner re-reads those records and the
    handlers are idempotent. On stop, what is held is handled and committed before closing.

    A handler may return a Future instead of finishing its effect (the ingest worker writes to
    Redis on another thread): the loop then polls and hands over the next batch meanwhile, and
    commits a batch's offsets, explicitly, only once its Future is done; if it failed, the loop
    rewinds to it (re-reading what came after too). One batch is in flight at a time.

    With ``dead_letters``, a batch that failed ``max_retries`` times more than once with an
    error not in ``transient`` is handled by halves at its next read (:class:`PoisonFinder`):
    the records that fail alone are dead-lettered and the batch is committed. Transient errors
    retry forever; ``stuck_after`` failures in a row make :attr:`stuck` true (readiness).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        group_id: str,
        handler: BatchHandler,
        *,
        max_records: int = 2000,
        poll_timeout_ms: int = 200,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 3000,
        retry_backoff_s: float = 0.5,
        flush_records: int = 1,
        flush_interval_s: float = 0.0,
        lag_interval_s: float = 1.0,
        consumer_overrides: dict[str, Any] | None = None,
        max_retries: int = 3,
        stuck_after: int = 5,
        dead_letters: DeadLetterWriter | None = None,
        transient: tuple[type[BaseException], ...] = (OSError, KafkaError),
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.group_id = group_id
        self.handler = handler
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.retry_backoff_s = retry_backoff_s
        self.flush_records = flush_records
        self.flush_interval_s = flush_interval_s
        self.lag_interval_s = lag_interval_s
        self._lag_at = 0.0
        self.consumer_overrides = consumer_overrides or {}
        self.stats = ConsumerLoopStats()
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._pending: tuple[Future[Any], _Span] | None = None
        self.max_retries = max_retries
        self.stuck_after = stuck_after
        self.dead_letters = dead_letters
        self.poison = PoisonFinder(handler, transient)
        self._isolate = False  # the next batch read is handled by halves

    def _create_consumer(self) -> KafkaConsumer:
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": self.max_records,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "bootstrap_timeout_ms": 3000,
        }
        config.update(self.consumer_overrides)
        consumer = KafkaConsumer(**config)
        consumer.subscribe(self.topics)
        return consumer

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT stop the loop gracefully (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def lag(self, timeout_ms: int = 1000) -> int | None:
        """Records between this consumer's position and the end of each assigned partition.

        The end is the high watermark of the latest fetch response (what Kafka's own
        ``records-lag`` uses; no extra round trip), or a ListOffsets answer for a partition not
        fetched yet (Tansu's is unreliable, hence not the first choice). Call it on the loop's
        thread with nothing held: the position is then past the batch whose write is in flight
        (its records are added: not committed yet), or at the start of a batch being retried.
        None when the broker did not answer.
        """
        consumer = self._consumer
        if consumer is None:
            return None
        try:
            parts = list(consumer.assignment())
            ends = {tp: consumer.highwater(tp) for tp in parts}
            unknown = [tp for tp, end in ends.items() if end is None]
            if unknown:
                ends.update(consumer.end_offsets(unknown, timeout_ms=timeout_ms))
            pos = {tp: consumer.position(tp, timeout_ms=timeout_ms) or 0 for tp in parts}
            in_flight = self._pending[1].records if self._pending is not None else 0
            return in_flight + int(sum(max(0, (ends[tp] or 0) - pos[tp]) for tp in parts))
        except (KafkaError, AssertionError, OSError):
            return None

    def _measure_lag(self) -> None:
        """Refresh ``stats.lag`` every ``lag_interval_s`` (one broker round trip)."""
        now = time.monotonic()
        if now - self._lag_at >= self.lag_interval_s:
            self._lag_at = now
            self.stats.lag = self.lag()

    def run(self) -> None:
        """Run until stop(); reconnects while the broker is unreachable."""
        while not self._stop.is_set():
            try:
                self._consumer = self._create_consumer()
            except (KafkaError, OSError) as exc:
                self.stats.last_error = f"kafka unreachable at {self.bootstrap}: {exc!r}"
                log.warning("consumer cannot connect", extra={"error": self.stats.last_error})
                self._stop.wait(self.retry_backoff_s * 4)
                continue
            try:
                self._poll_until_stopped(self._consumer)
            finally:
                self._close(self._consumer)
                self._consumer = None

    @property
    def connected(self) -> bool:
        """True while a consumer exists (it reconnects by itself after a broker outage)."""
        return self._consumer is not None

    def pause(self, seconds: float) -> bool:
        """Sleep, waking early when stop() is called; True once stopping."""
        return self._stop.wait(seconds)

    def _poll_until_stopped(self, consumer: KafkaConsumer) -> None:
        buffer: dict[TopicPartition, list[ConsumerRecord]] = {}
        held, first_at = 0, 0.0
        while not self._stop.is_set():
            wait_s = self.poll_timeout_ms / 1000
            if held:
                wait_s = min(wait_s, max(0.0, first_at + self.flush_interval_s - time.monotonic()))
            if self._pending is not None:
                wait_s = 0.0  # a write is in flight: take what was fetched, do not wait for more
            polled = consumer.poll(timeout_ms=int(wait_s * 1000), max_records=self.max_records)
            self.stats.assigned = set(consumer.assignment())
            if polled and not held:
                first_at = time.monotonic()
            for tp, records in polled.items():
                buffer.setdefault(tp, []).extend(records)
                held += len(records)
            due = held and time.monotonic() - first_at >= self.flush_interval_s
            if held and (held >= self.flush_records or due):
                self._flush(consumer, buffer)
                buffer, held = {}, 0
            elif not polled:
                self._settle(consumer)  # nothing new: finish the write in flight and commit it
            if not held:
                self._measure_lag()  # also while idle or failing, so the gauge never goes stale
        if held:
            self._flush(consumer, buffer)  # graceful stop: handle what was read, then commit
        self._settle(consumer)

    def _flush(
        self, consumer: KafkaConsumer, buffer: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        """Hand a batch over, then settle the previous one (its write overlapped this poll and
        this batch's preparation), then commit this one or keep it in flight."""
        batch = [rec for records in buffer.values() for rec in records]
        span = _Span.of(buffer)
        if self._isolate:  # a batch in flight that failed rewinds to it, this one re-read too
            if self._settle(consumer, then=span):
                self._dead_letter_poison(consumer, batch, span)
            return
        outcome = self._handle(batch)
        if not self._settle(consumer, then=span):  # the previous one failed: both are re-read
            if isinstance(outcome, Future):
                _drain(outcome)
            return
        if outcome is False:
            self._rewind(consumer, span)
        elif outcome is None:
            self._done(consumer, span)
        else:
            self._pending = (outcome, span)

    def _handle(self, batch: list[ConsumerRecord]) -> Literal[False] | Future[Any] | None:
        """False: failed at once; a Future: the effect completes later; None: done."""
        try:
            result = self.handler(batch)
        except Exception as exc:  # the batch is retried, never skipped; the error is kept
            self._failed(exc)
            return False
        return result if isinstance(result, Future) else None

    def _settle(self, consumer: KafkaConsumer, then: _Span | None = None) -> bool:
        """Wait for the batch in flight, if any: commit it, or rewind to it (False), and to the
        batch read ``then`` on partitions the failed one did not have."""
        if self._pending is None:
            return True
        future, span = self._pending
        self._pending = None
        try:
            future.result()
        except Exception as exc:  # as for a synchronous failure: retried, never skipped
            self._failed(exc)
            self._rewind(consumer, span.before(then))
            return False
        self._done(consumer, span)
        return True

    def _dead_letter_poison(
        self, consumer: KafkaConsumer, batch: list[ConsumerRecord], span: _Span
    ) -> None:
        """Handle a batch that kept failing by halves, dead-letter what fails alone, commit."""
        assert self.dead_letters is not None  # only set with a dead-letter writer
        try:
            letters = self.poison.split(batch, self.stats.failures_in_a_row + 1)
            self.dead_letters.send(letters)
        except Exception as exc:  # a dependency failed meanwhile: the whole batch again
            self._failed(exc)
            self._rewind(consumer, span)
            return
        self._isolate = False
        self.stats.dead_lettered += len(letters)
        if letters:
            self.stats.last_dead_letter = letters[-1].reason
        self._done(consumer, span)

    @property
    def stuck(self) -> bool:
        """True once the batch in hand failed ``stuck_after`` times in a row."""
        return self.stats.failures_in_a_row >= self.stuck_after

    def _done(self, consumer: KafkaConsumer, span: _Span) -> None:
        """Commit a handled batch's offsets (explicit ones: a later batch may be in flight)."""
        self.stats.failures_in_a_row = 0
        FAILURES_IN_A_ROW.labels(self.group_id).set(0)
        self.stats.batches += 1
        self.stats.records += span.records
        self.stats.last_error = ""
        offsets = {tp: OffsetAndMetadata(end, "", -1) for tp, end in span.end.items()}
        try:
            consumer.commit(offsets)
        except KafkaError as exc:
            self.stats.commit_failures += 1
            log.warning("commit failed after a successful batch", extra={"error": repr(exc)})

    def _rewind(self, consumer: KafkaConsumer, span: _Span) -> None:
        """Read a failed batch again after a back-off (what came after it is re-read too)."""
        for tp, offset in span.start.items():
            consumer.seek(tp, offset)
        self._lag_at = 0.0  # the batch is back in the lag: show it at once
        self._stop.wait(self.retry_backoff_s)

    def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        self.stats.failures_in_a_row += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        RETRIES.labels(self.group_id).inc()
        FAILURES_IN_A_ROW.labels(self.group_id).set(self.stats.failures_in_a_row)
        poison = self.dead_letters is not None and not self.poison.is_transient(exc)
        if poison and self.stats.failures_in_a_row > self.max_retries:
            self._isolate = True  # the next read of this batch looks for its poison records
        log.error("batch handler failed; batch will be retried", exc_info=exc)

    def _close(self, consumer: KafkaConsumer) -> None:
        try:
            consumer.close(autocommit=False)
        except (KafkaError, OSError) as exc:
            log.warning("consumer close failed", extra={"error": repr(exc)})
