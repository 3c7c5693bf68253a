"""Producing: acks=all producers, created lazily, and ``send_all`` to await them from asyncio."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from shared.stream.broker import broker_reachable

log = logging.getLogger(__name__)


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
