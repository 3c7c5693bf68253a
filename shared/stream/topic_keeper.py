"""Making sure topics exist: the one admin call that creates them, and the keeper that remembers.

Tansu (the local broker) keeps topics in memory only, so a restarted broker comes back without
them; every producer and consumer of a topic therefore creates it itself. :class:`TopicKeeper`
is the one way to do that: it asks the broker until it confirmed the topics once, remembers
that, and asks again after ``forget()`` (a failed send: the broker may have lost them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

_BROKER_ERRORS = (KafkaError, OSError)
"""What a broker that is down, slow or without the topics raises (TimeoutError is an OSError)."""


def ensure_topics(bootstrap: str, topics: Mapping[str, int], timeout_s: float = 10.0) -> None:
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


def _sleep(seconds: float) -> bool:
    """A pause that is never told to stop."""
    time.sleep(seconds)
    return False


class TopicKeeper:
    """Keeps topics (name -> partitions) existing, asking the broker only while unconfirmed.

    ``ensure()`` asks once (raising what the broker raised); ``wait()`` retries on a thread;
    ``start()`` retries from an asyncio task and checks again after each ``forget()``.
    ``status()`` / ``check()`` report readiness from what is remembered, never asking the broker.
    ``warm`` runs after the broker confirmed the topics, on the same thread (the events API loads
    the topic's partition metadata into its producer so ``send()`` never blocks the event loop
    on it); its failure counts as the topics' failure. Thread-safe: ``forget()`` may come from
    kafka-python's I/O thread.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Mapping[str, int],
        timeout_s: float = 3.0,
        warm: Callable[[], object] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = dict(topics)
        self.timeout_s = timeout_s
        self.warm = warm
        self._confirmed = False
        self._generation = 0  # bumped by forget(): an answer asked for before it is stale
        self._last_error = f"topics {sorted(self.topics)} not confirmed by kafka at {bootstrap} yet"
        self._state = threading.Lock()
        self._asking = threading.Lock()  # one broker round trip at a time; the rest reuse it
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def confirmed(self) -> bool:
        """True once the broker confirmed the topics (and nothing was forgotten since)."""
        return self._confirmed

    def ensure(self) -> None:
        """Create the topics unless already confirmed; raises KafkaError / OSError if not."""
        if self._confirmed:
            return
        with self._asking:
            with self._state:
                if self._confirmed:
                    return  # another thread's round trip confirmed them meanwhile
                generation = self._generation
            try:
                ensure_topics(self.bootstrap, self.topics, self.timeout_s)
                if self.warm is not None:
                    self.warm()
            except _BROKER_ERRORS as exc:
                self._failed(exc)
                raise
            self._confirm(generation)

    async def ensure_async(self) -> None:
        """``ensure()`` on a worker thread (the admin client blocks)."""
        if not self._confirmed:
            await asyncio.to_thread(self.ensure)

    def wait(self, retry_s: float, pause: Callable[[float], bool] = _sleep) -> bool:
        """Block until the topics are confirmed, retrying every ``retry_s``; False when
        ``pause`` (e.g. ``threading.Event.wait`` or ``ConsumerLoop.pause``) says stop."""
        while True:
            try:
                self.ensure()
                return True
            except _BROKER_ERRORS:
                if pause(retry_s):
                    return False

    def forget(self, reason: str = "re-checking the topics after a failed send") -> None:
        """Unconfirm the topics: the next ``ensure()`` asks the broker again (and a running
        background task does so at once). Until then, readiness reports ``reason``."""
        with self._state:
            self._confirmed = False
            self._generation += 1
            self._last_error = reason
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to wake
                loop.call_soon_threadsafe(wake.set)

    def status(self) -> tuple[bool, str]:
        """(ready, reason) from what is remembered; no broker round trip."""
        with self._state:
            return (True, "ok") if self._confirmed else (False, self._last_error)

    async def check(self) -> tuple[bool, str]:
        """Readiness check (``Readiness.add``): ``status()``."""
        return self.status()

    def start(self, retry_s: float) -> None:
        """Keep the topics from a background task: retry every ``retry_s`` while the broker
        says no, and again after each ``forget()`` (call inside the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._keep(retry_s, self._wake), name="topic-keeper")

    async def stop(self) -> None:
        """Cancel the background task, if started."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task, self._loop, self._wake = None, None, None

    async def _keep(self, retry_s: float, wake: asyncio.Event) -> None:
        while True:
            if not self._confirmed:
                try:
                    await self.ensure_async()
                except _BROKER_ERRORS:
                    await asyncio.sleep(retry_s)
                    continue
            await wake.wait()
            wake.clear()

    def _failed(self, exc: BaseException) -> None:
        reason = f"cannot ensure topics {sorted(self.topics)} on kafka at {self.bootstrap}: {exc!r}"
        with self._state:
            self._last_error = reason
        log.warning("topics not ready", extra={"error": reason})

    def _confirm(self, generation: int) -> None:
        with self._state:
            if generation != self._generation:
                return  # forgotten while asking: the answer may predate the loss; ask again
            self._confirmed = True
            self._last_error = ""
        log.info("topics ready", extra={"topics": sorted(self.topics)})
