"""DriftWindow: one variant's sampled bin counts over a sliding time window, in slices.

Counts go into the newest slice; a slice older than the window is dropped whole, so the
window covers between ``window_s - slice_s`` and ``window_s`` of traffic. PSI is computed
from the summed slices when asked (a scrape, the JSON endpoint), never on the request path.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from services.ranking.monitors.binner import Binner, Plan
from shared.monitors.features import ITEM_NAMES, USER_NAMES
from shared.monitors.psi import fractions, psi
from shared.monitors.reference import Binned, DriftReference


@dataclass
class _Slice:
    start: float
    counts: np.ndarray  # flat counts of the binner (user features, item features, heads)
    requests: int = 0
    items: int = 0


@dataclass
class Figure:
    """One monitored quantity over the window: its PSI (None below the minimum sample)."""

    name: str
    psi: float | None
    reference: Binned
    served: np.ndarray = field(default_factory=lambda: np.zeros(0))


class DriftWindow:
    """Sliding-window bin counts of one variant's sampled requests against one reference."""

    def __init__(
        self, reference: DriftReference, heads: list[str], window_s: float, slices: int
    ) -> None:
        self.reference = reference
        self.heads = [h for h in heads if h in reference.scores]
        # One binning for the whole request: the user's features once, then per candidate
        # the item features and the head scores.
        self.refs = [reference.user[n] for n in USER_NAMES]
        self.refs += [reference.item[n] for n in ITEM_NAMES]
        self.refs += [reference.scores[h] for h in self.heads]
        self.binner = Binner(self.refs)
        self.window_s = window_s
        self.slice_s = window_s / max(1, slices)
        self._plans: dict[int, Plan] = {}
        self._slices: deque[_Slice] = deque()
        self._lock = threading.Lock()  # scrapes may read from another thread

    def add(self, now: float, user: np.ndarray, rows: np.ndarray) -> None:
        """Count one sampled request: its user features [3] and per candidate row the item
        features then the head scores [n, 9 + heads]."""
        plan = self._plans.get(len(rows))
        if plan is None:
            plan = self._plans.setdefault(len(rows), self._plan(len(rows)))
        counts = self.binner.counts(np.concatenate([user.reshape(-1), rows.reshape(-1)]), plan)
        with self._lock:
            current = self._current(now)
            current.counts += counts
            current.requests += 1
            current.items += len(rows)

    def _plan(self, n_rows: int) -> Plan:
        n_user = len(USER_NAMES)
        per_row = np.arange(n_user, len(self.refs))
        return self.binner.plan(np.concatenate([np.arange(n_user), np.tile(per_row, n_rows)]))

    def _current(self, now: float) -> _Slice:
        while self._slices and self._slices[0].start <= now - self.window_s:
            self._slices.popleft()
        if not self._slices or now - self._slices[-1].start >= self.slice_s:
            self._slices.append(_Slice(now, np.zeros(self.binner.size, np.int64)))
        return self._slices[-1]

    def totals(self, now: float) -> tuple[int, int, np.ndarray]:
        """(requests, items, flat counts) of the slices inside the window."""
        with self._lock:
            live = [s for s in self._slices if s.start > now - self.window_s]
            counts = sum((s.counts for s in live), np.zeros(self.binner.size, np.int64))
            return sum(s.requests for s in live), sum(s.items for s in live), counts

    def figures(self, now: float, min_requests: int) -> tuple[int, int, list[Figure], list[Figure]]:
        """(requests, items, feature figures, score figures) over the window."""
        requests, items, counts = self.totals(now)
        names = [*USER_NAMES, *ITEM_NAMES, *self.heads]
        figures = _figures(names, self.refs, self.binner.split(counts), requests >= min_requests)
        n_features = len(USER_NAMES) + len(ITEM_NAMES)
        return requests, items, figures[:n_features], figures[n_features:]


def _figures(
    names: list[str], refs: list[Binned], counts: list[np.ndarray], enough: bool
) -> list[Figure]:
    out = []
    for name, ref, c in zip(names, refs, counts, strict=True):
        served = fractions(c)
        out.append(Figure(name, psi(ref.fractions, served) if enough else None, ref, served))
    return out
