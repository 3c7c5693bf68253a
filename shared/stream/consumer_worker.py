"""Runs a consumer loop on a background thread next to a service's HTTP shell."""

from __future__ import annotations

import logging
import threading

from shared.stream.broker import broker_reachable
from shared.stream.consumer_loop import ConsumerLoop
from shared.stream.topic_keeper import TopicKeeper

log = logging.getLogger(__name__)


class ConsumerWorker:
    """Creates the topics (retrying while the broker is down), then runs the loop until stop.

    If the loop dies of an unexpected error it is logged and restarted after a pause: offsets
    are only committed after a batch was handled, so a restart re-reads, never skips.
    """

    def __init__(
        self, loop: ConsumerLoop, topics: dict[str, int], name: str, retry_s: float = 2.0
    ) -> None:
        self.loop = loop
        self.topics = TopicKeeper(loop.bootstrap, topics, timeout_s=3.0)
        self.retry_s = retry_s
        self.error = ""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the loop (it handles and commits what it holds) and wait for the thread."""
        self.loop.stop()
        self._thread.join(timeout_s)

    def ready(self) -> tuple[bool, str]:
        """Readiness of the broker side: topics there, consumer live, broker reachable."""
        bootstrap = self.loop.bootstrap
        if not self._thread.is_alive():
            return False, f"consumer thread not running: {self.error}"
        topics_ok, reason = self.topics.status()
        if not topics_ok:
            return False, reason
        if not self.loop.connected:
            return False, self.loop.stats.last_error or "consumer not started yet"
        # The consumer object survives an outage; say so honestly meanwhile.
        if not broker_reachable(bootstrap):
            return False, f"kafka unreachable at {bootstrap}"
        return self._progress()

    def _progress(self) -> tuple[bool, str]:
        """Not ready while stuck on a failing batch; ready, saying so, while dead-lettering."""
        stats = self.loop.stats
        if self.loop.stuck:
            return False, f"stuck: a batch failed {stats.failures_in_a_row} times in a row: " + (
                stats.last_error
            )
        reason = f"ok, {len(stats.assigned)} partition(s) assigned"
        if stats.dead_lettered:
            reason += f"; dead-lettered {stats.dead_lettered} poison record(s), last: "
            reason += stats.last_dead_letter
        return True, reason

    def _run(self) -> None:
        if self.loop.stopping or not self.topics.wait(self.retry_s, self.loop.pause):
            return
        while not self.loop.stopping:
            try:
                self.loop.run()
            except Exception as exc:  # the loop must outlive a bug in one batch; it re-reads
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("consumer loop died; restarting")
                self.loop.pause(self.retry_s)
