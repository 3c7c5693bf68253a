"""PoisonFinder in-process: halving a failing batch, in order, down to its poison records."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from shared.stream.poison import PoisonFinder


def records(n: int) -> list[ConsumerRecord]:
    fields = dict.fromkeys(ConsumerRecord._fields)
    return [
        ConsumerRecord(**{**fields, "topic": "t", "partition": 0, "offset": k}) for k in range(n)
    ]


class Handler:
    """Fails any batch holding a poison offset; records what it handled, in order."""

    def __init__(self, poison: set[int], error: Exception, as_future: bool = False) -> None:
        self.poison, self.error, self.as_future = poison, error, as_future
        self.handled: list[int] = []
        self.calls = 0

    def __call__(self, batch: list[ConsumerRecord]) -> Future[None] | None:
        self.calls += 1
        future: Future[None] = Future()
        if any(r.offset in self.poison for r in batch):
            if not self.as_future:
                raise self.error
            future.set_exception(self.error)
        else:
            self.handled.extend(r.offset for r in batch)
            future.set_result(None)
        return future if self.as_future else None


@pytest.mark.parametrize("as_future", [False, True])
def test_the_poison_records_alone_are_dead_lettered_and_the_rest_handled_in_order(
    as_future: bool,
) -> None:
    handler = Handler({5, 6, 40}, ValueError("bad position"), as_future)
    letters = PoisonFinder(handler, (OSError,)).split(records(64), attempts=4)
    assert [dl.record.offset for dl in letters] == [5, 6, 40]
    assert {dl.kind for dl in letters} == {"handler"}
    assert letters[0].reason == "handler failed after 4 attempt(s): ValueError: bad position"
    assert handler.handled == [k for k in range(64) if k not in {5, 6, 40}]
    assert handler.calls <= 3 * 2 * 6 + 1  # O(k log n), not one call per record


def test_a_transient_error_is_never_a_records_fault() -> None:
    handler = Handler({3}, ConnectionRefusedError("redis down"))
    with pytest.raises(ConnectionRefusedError):
        PoisonFinder(handler, (OSError,)).split(records(8), attempts=4)
    assert handler.handled == []
