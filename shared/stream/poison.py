"""Finding the poison records of a batch that keeps failing in its handler.

A record that decodes but fails in a handler (a value Parquet cannot store, a key of the wrong
type in Redis) fails its whole batch on every retry. After the bounded retries the consumer loop
hands the batch to :class:`PoisonFinder`, which halves it until each failing record is alone:
the good halves are handled (in order), the records that fail alone are dead-lettered with the
error, and the loop commits past the batch. Errors of a dependency (``transient``: Redis or the
broker unreachable, a full disk) are never a record's fault: they propagate, and the loop keeps
retrying the whole batch (and says it is stuck). Handlers must be all-or-nothing per call (the
ingest script and the Parquet writer are), so a failed half left nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from shared.stream.dead_letters import DeadLetter

Handler = Callable[[list[ConsumerRecord]], "Future[Any] | None"]


class PoisonFinder:
    """Handles a failing batch by halves; gives the dead letters of the records failing alone."""

    def __init__(self, handler: Handler, transient: tuple[type[BaseException], ...]) -> None:
        self.handler = handler
        self.transient = transient

    def is_transient(self, exc: BaseException) -> bool:
        """True for an error of a dependency rather than of the records."""
        return isinstance(exc, self.transient)

    def split(self, records: Sequence[ConsumerRecord], attempts: int) -> list[DeadLetter]:
        """Handle ``records`` (synchronously, halving on failure); raise a transient error."""
        try:
            self._run(list(records))
            return []
        except Exception as exc:
            if self.is_transient(exc):
                raise
            if len(records) == 1:
                reason = f"handler failed after {attempts} attempt(s): {type(exc).__name__}: {exc}"
                return [DeadLetter(records[0], reason, kind="handler")]
        mid = len(records) // 2
        return self.split(records[:mid], attempts) + self.split(records[mid:], attempts)

    def _run(self, records: list[ConsumerRecord]) -> None:
        outcome = self.handler(records)
        if isinstance(outcome, Future):
            outcome.result()
