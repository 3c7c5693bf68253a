"""OffPolicySlots: exploration slots a shadow judged, joined with their clicks (no Kafka).

A shadow run of a ranker writes, for each exploration slot of production's list, the item
shown, its propensity and whether the candidate's and production's rankers would have picked
it from the same pool (services/gateway/rollouts/shadow.py). A click on that item in that
request is the slot's reward. Either may be read first (two topics, two producers), so a
click waits for its slot record, bounded in time and count, like the exposure join's events.

:meth:`arrays` gives the columns ``shared.stats.off_policy`` estimates from: the IPS / SNIPS
value of "the slot shows the candidate's pick" against "the slot shows production's pick",
both from the same uniformly randomised slots.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from services.rollouts.time_window import drop_before


class OffPolicySlot(msgspec.Struct, frozen=True):
    """One exploration slot as the shadow logged it."""

    item: str
    p: float  # the logging policy's probability of showing this item in this slot
    candidate: bool  # the shadow's ranker would have picked it from the pool
    production: bool  # production's ranker would have picked it


class OffPolicyRecord(msgspec.Struct, frozen=True):
    """The ``off_policy`` field of a shadow's record on the served topic."""

    rollouts: list[str]
    slots: list[OffPolicySlot]


@dataclass(frozen=True)
class SlotArrays:
    """Aligned columns, one row per logged slot."""

    propensity: NDArray[np.float64]
    candidate: NDArray[np.float64]  # target probability of the logged item, candidate policy
    production: NDArray[np.float64]  # the same for production's pick
    clicked: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.propensity)


class OffPolicySlots:
    """Slots of one rollout's shadow runs and the clicks on them.

    ``max_slots`` bounds what is kept for the estimate (later slots are counted in
    ``dropped``, never silently); ``max_waiting`` the clicks waiting for their slot record.
    """

    def __init__(self, window_s: float = 600.0, max_slots: int = 500_000,
                 max_waiting: int = 100_000) -> None:  # fmt: skip
        self.window_s = window_s
        self.max_slots = max_slots
        self.max_waiting = max_waiting
        self._rows: list[list[float]] = []  # [p, candidate, production, clicked]
        # request id -> (stream time, user id, {item: row}): where a later click lands
        self._open: OrderedDict[str, tuple[float, str, dict[str, int]]] = OrderedDict()
        # request id -> (stream time, user id, items clicked) before its slot record came
        self._clicks: OrderedDict[str, tuple[float, str, set[str]]] = OrderedDict()
        self.dropped = 0

    def add_record(self, request_id: str, user_id: str, record: OffPolicyRecord,
                   at: float) -> bool:  # fmt: skip
        """A shadow's slot record read at stream time ``at`` (False: seen, a retry)."""
        if request_id in self._open:
            return False
        rows: dict[str, int] = {}
        for slot in record.slots:
            if len(self._rows) >= self.max_slots:
                self.dropped += 1
                continue
            rows[slot.item] = len(self._rows)
            self._rows.append([slot.p, float(slot.candidate), float(slot.production), 0.0])
        self._open[request_id] = (at, user_id, rows)
        early = self._clicks.pop(request_id, None)
        if early is not None and early[1] == user_id:
            for item in early[2]:
                self._credit(rows, item)
        return True

    def add_click(self, request_id: str, user_id: str, item_id: str | None, at: float) -> None:
        """A click (already deduplicated by the caller) on ``item_id`` in ``request_id``."""
        if item_id is None:
            return
        known = self._open.get(request_id)
        if known is not None:
            if known[1] == user_id:
                self._credit(known[2], item_id)
            return
        waiting = self._clicks.get(request_id)
        if waiting is None:
            waiting = self._clicks[request_id] = (at, user_id, set())
            if len(self._clicks) > self.max_waiting:
                self._clicks.popitem(last=False)
        waiting[2].add(item_id)

    def _credit(self, rows: dict[str, int], item_id: str) -> None:
        row = rows.get(item_id)
        if row is not None:
            self._rows[row][3] = 1.0  # a slot's reward is whether it was clicked, once

    def expire(self, served_watermark: float | None, events_watermark: float | None) -> None:
        """Forget clicks whose slot record will not come, and slots whose clicks are done."""
        if served_watermark is not None:
            drop_before(self._clicks, served_watermark - self.window_s, _time)
        if events_watermark is not None:
            drop_before(self._open, events_watermark - self.window_s, _time)

    def arrays(self) -> SlotArrays:
        """Every slot kept so far, as columns."""
        table = np.array(self._rows, dtype=np.float64).reshape(len(self._rows), 4)
        return SlotArrays(table[:, 0], table[:, 1], table[:, 2], table[:, 3])


def _time(entry: tuple[float, str, Any]) -> float:
    return entry[0]
