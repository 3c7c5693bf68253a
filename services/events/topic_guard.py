"""Makes sure the events topic exists, retrying in the background while the broker is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from kafka.errors import KafkaError

from shared.kafka import ensure_topics

log = logging.getLogger(__name__)


class TopicGuard:
    """Creates the topic at start and again after a produce failure (a restarted broker may
    have lost it); readiness stays false until the broker confirmed the topic.

    ``warm`` runs after each success (in a worker thread): the app uses it to load the topic's
    partition metadata into the producer, so ``send()`` never blocks the event loop on it.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: dict[str, int],
        retry_s: float,
        warm: Callable[[], None] | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.retry_s = retry_s
        self.warm = warm
        self.timeout_s = timeout_s
        self.ready = False
        self.last_error = "topic not created yet"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (call inside the running event loop)."""
        self._task = asyncio.create_task(self._run(), name="topic-guard")

    def recheck(self) -> None:
        """Mark the topic unconfirmed and make the background task check it again."""
        self.ready = False
        self.last_error = "re-checking the topic after a failed produce"
        self._wake.set()

    async def check(self) -> tuple[bool, str]:
        """Readiness check."""
        return (True, "ok") if self.ready else (False, self.last_error)

    async def stop(self) -> None:
        """Cancel the background task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            if not self.ready and not await self._attempt():
                await asyncio.sleep(self.retry_s)
                continue
            await self._wake.wait()
            self._wake.clear()

    async def _attempt(self) -> bool:
        try:
            await asyncio.to_thread(ensure_topics, self.bootstrap, self.topics, self.timeout_s)
            if self.warm is not None:
                await asyncio.to_thread(self.warm)
        except (KafkaError, OSError, TimeoutError) as exc:
            self.last_error = f"cannot ensure topics {sorted(self.topics)}: {exc!r}"
            log.warning("topic not ready", extra={"error": self.last_error})
            return False
        if not self.ready:
            log.info("topics ready", extra={"topics": sorted(self.topics)})
        self.ready = True
        self.last_error = ""
        return True
