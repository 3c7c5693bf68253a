"""Runs the sink's consumer loop on a background thread next to the HTTP shell."""

from __future__ import annotations

import logging
import threading

from kafka.errors import KafkaError

from shared.kafka import ConsumerLoop, ensure_topics

log = logging.getLogger(__name__)


class SinkWorker:
    """Creates the topics (retrying while the broker is down), then runs the loop until stop.

    If the loop dies of an unexpected error it is logged and restarted after a pause: offsets
    were only committed after durable writes, so a restart re-reads, never skips.
    """

    def __init__(
        self, loop: ConsumerLoop, topics: dict[str, int], retry_s: float = 2.0
    ) -> None:
        self.loop = loop
        self.topics = topics
        self.retry_s = retry_s
        self.error = "starting"
        self._thread = threading.Thread(target=self._run, name="offline-sink", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the loop (it flushes and commits what it holds) and wait for the thread."""
        self.loop.stop()
        self._thread.join(timeout_s)

    def ready(self) -> tuple[bool, str]:
        """Readiness: the thread runs and its consumer is connected."""
        if not self._thread.is_alive():
            return False, f"sink thread not running: {self.error}"
        if not self.loop.connected:
            return False, self.loop.stats.last_error or self.error
        parts = len(self.loop.stats.assigned)
        return True, f"consuming, {parts} partition(s) assigned"

    def _run(self) -> None:
        while not self.loop.stopping and not self._ensure_topics():
            self.loop.pause(self.retry_s)
        while not self.loop.stopping:
            try:
                self.loop.run()
            except Exception as exc:  # the loop must outlive a bug in one batch; it re-reads
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("sink loop died; restarting")
                self.loop.pause(self.retry_s)

    def _ensure_topics(self) -> bool:
        try:
            ensure_topics(self.loop.bootstrap, self.topics, timeout_s=3.0)
        except (KafkaError, OSError) as exc:
            self.error = f"cannot ensure topics {sorted(self.topics)}: {exc!r}"
            log.warning("topics not ready", extra={"error": self.error})
            return False
        self.error = ""
        return True
