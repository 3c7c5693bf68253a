"""Kafka helpers: topic setup, an acks=all producer usable from asyncio, and the consumer loop.

The consumer loop has one shape (poll a batch, handle it, commit only after the handler
succeeded), so every worker gets at-least-once delivery; handlers make it exactly-once in effect
by being idempotent. SIGTERM stops the loop after the batch in hand, with a final commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import BaseModel

from shared.platform.settings import platform

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord]], "Future[Any] | None"]
"""Handles a batch: returns None when its effect is complete, or a Future that completes with
it (meanwhile the loop polls and hands over the next batch; it commits only once it is done)."""


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 10.0) -> None:
    """Create topics (name -> partitions) that do not exist yet; existing ones are left alone."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","),
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name=name, num_partitions=parts, replication_factor=1)
            for name, parts in topics.items()
            if name not in existing
        ]
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create: the goal is met
    finally:
        admin.close()


def create_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A producer that only counts a message as sent once every in-sync replica has it."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "acks": "all",
        "linger_ms": 1,
        "retries": 5,
        "request_timeout_ms": 5000,
        "max_block_ms": 5000,
        "enable_idempotence": False,
        # kafka-python blocks in the constructor until the broker answers (default 30 s):
        # fail fast so a service with a dead broker starts and reports not-ready instead.
        "bootstrap_timeout_ms": 3000,
    }
    config.update(overrides)
    return KafkaProducer(**config)


async def send_all(
    producer: KafkaProducer,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes]],
    timeout_s: float = 5.0,
) -> None:
    """Send (key, value) messages and return once the broker acknowledged all of them.

    kafka-python's futures complete on its I/O thread; one asyncio future per call is settled
    from there when the last ack (or the first failure) arrives, so the event loop is woken
    once per batch, not once per message. Raises KafkaError (or TimeoutError) if any failed.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    acks = _AckCounter(loop, done, len(messages))
    for key, value in messages:
        producer.send(topic, key=key, value=value).add_both(acks.settle)
    await asyncio.wait_for(done, timeout_s)


class _AckCounter:
    """Counts a batch's delivery results (on kafka-python's thread) into one asyncio future."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None], expected: int
    ) -> None:
        self.loop = loop
        self.done = done
        self.pending = expected
        self.failed = False
        self._lock = threading.Lock()
        if expected == 0:
            done.set_result(None)

    def settle(self, result: Any) -> None:
        """Callback and errback of every message's future (an exception means it failed)."""
        with self._lock:
            if self.failed:
                return
            if isinstance(result, BaseException):
                self.failed = True
                self.loop.call_soon_threadsafe(_set_exception, self.done, result)
                return
            self.pending -= 1
            if self.pending == 0:
                self.loop.call_soon_threadsafe(_set_result, self.done)


def _set_result(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _set_exception(fut: asyncio.Future[None], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def broker_reachable(bootstrap: str, timeout_s: float = 0.3) -> bool:
    """True when any bootstrap server accepts a TCP connection.

    kafka-python 3.0's ``bootstrap_connected()`` turns False once bootstrapping has finished,
    so it cannot tell a live broker from a dead one; a connect is cheap and unambiguous.
    """
    for server in bootstrap.split(","):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


class LazyProducer:
    """Creates the producer on first use and again after a broker outage.

    kafka-python's constructor fails when no broker answers; a service must still start and
    report not-ready instead of crash-looping, so creation is deferred and retried.
    """

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        self.bootstrap = bootstrap
        self.overrides = overrides
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self.last_error = "not connected yet"

    def get(self) -> KafkaProducer:
        """The live producer, creating it if needed; raises KafkaError when down."""
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = create_producer(self.bootstrap, **self.overrides)
                except (KafkaError, OSError) as exc:
                    self.last_error = f"kafka unreachable at {self.bootstrap}: {exc!r}"
                    raise
                self.last_error = ""
            return self._producer

    def ready(self) -> tuple[bool, str]:
        """Readiness probe: a producer exists and a bootstrap broker accepts connections."""
        try:
            self.get()
        except (KafkaError, OSError):
            return False, self.last_error
        # The producer object survives broker restarts; report an outage honestly meanwhile.
        if not broker_reachable(self.bootstrap):
            return False, f"kafka unreachable at {self.bootstrap}"
        return True, "ok"

    def close(self) -> None:
        """Flush and close the producer if one was created."""
        with self._lock:
            if self._producer is not None:
                try:
                    self._producer.close(timeout=5)
                except KafkaError as exc:  # unflushed records to a dead broker: say so, go on
                    log.warning("producer close failed", extra={"error": repr(exc)})
                self._producer = None


def register_producer(
    resources: Any, bootstrap: str, name: str = "kafka", required: bool = True, **overrides: Any
) -> LazyProducer:
    """A producer created on first use, its broker a readiness check of ``resources``
    (``shared.platform.resources.Resources``), closed with them."""
    producer = LazyProducer(bootstrap, **overrides)

    async def check() -> tuple[bool, str]:
        return await asyncio.to_thread(producer.ready)

    async def close() -> None:
        await asyncio.to_thread(producer.close)

    resources.readiness.add(name, check, required)
    resources.on_close(close)
    return producer


@dataclass
class ConsumerLoopStats:
    """Counters a worker exposes through its metrics and readiness."""

    batches: int = 0
    records: int = 0
    failures: int = 0
    last_error: str = ""
    commit_failures: int = 0
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


class ConsumerGroupSettings(BaseModel):
    """Settings of a consumer of the events topic.

    The group timings are also read platform-wide as ``CASCADE_KAFKA_<NAME>``: every consumer
    of a Tansu broker wants the short values (it joins a group in about half the session
    timeout), while real Kafka keeps the defaults. The partition count is platform-wide so the
    events API and every consumer create the topic alike.
    """

    session_timeout_ms: int = platform(10_000, env="KAFKA_SESSION_TIMEOUT_MS", ge=1000, le=300_000)
    heartbeat_interval_ms: int = platform(
        3000, env="KAFKA_HEARTBEAT_INTERVAL_MS", ge=100, le=100_000
    )
    event_partitions: int = platform(
        6, ge=1, le=1024, description="partitions of the events topic when it is created"
    )


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

    def _done(self, consumer: KafkaConsumer, span: _Span) -> None:
        """Commit a handled batch's offsets (explicit ones: a later batch may be in flight)."""
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
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.error("batch handler failed; batch will be retried", exc_info=exc)

    def _close(self, consumer: KafkaConsumer) -> None:
        try:
            consumer.close(autocommit=False)
        except (KafkaError, OSError) as exc:
            log.warning("consumer close failed", extra={"error": repr(exc)})
