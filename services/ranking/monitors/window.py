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

from services.ranking.monitors.binner import Binner
from shared.monitors.features import ITEM_NAMES, USER_NAMES
from shared.monitors.psi import fractions, psi
from shared.monitors.reference import Binned, DriftReference


@dataclass
class _Slice:
    start: float
    user: np.ndarray  # flat counts of the user binner
    rows: np.ndarray  # flat counts of the row binner (item features, then heads)
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
        self.user = Binner([reference.user[n] for n in USER_NAMES])
        # Item features and head scores have a row per candidate: one matrix, one binning.
        self.row_refs = [reference.item[n] for n in ITEM_NAMES]
        self.row_refs += [reference.scores[h] for h in self.heads]
        self.rows = Binner(self.row_refs)
        self.window_s = window_s
        self.slice_s = window_s / max(1, slices)
        self._slices: deque[_Slice] = deque()
        self._lock = threading.Lock()  # scrapes may read from another thread

    def add(self, now: float, user: np.ndarray, item: np.ndarray, scores: np.ndarray) -> None:
        """Count one sampled request: user rows [1, 3], item rows [n, 9], scores [n, heads]."""
        u = self.user.counts(user)
        r = self.rows.counts(np.concatenate([item, scores], axis=1))
        with self._lock:
            current = self._current(now)
            current.user += u
            current.rows += r
            current.requests += 1
            current.items += len(item)

    def _current(self, now: float) -> _Slice:
        while self._slices and self._slices[0].start <= now - self.window_s:
            self._slices.popleft()
        if not self._slices or now - self._slices[-1].start >= self.slice_s:
            user, rows = np.zeros(self.user.size, np.int64), np.zeros(self.rows.size, np.int64)
            self._slices.append(_Slice(now, user, rows))
        return self._slices[-1]

    def totals(self, now: float) -> tuple[int, int, np.ndarray, np.ndarray]:
        """(requests, items, user counts, row counts) of the slices inside the window."""
        with self._lock:
            live = [s for s in self._slices if s.start > now - self.window_s]
            user = sum((s.user for s in live), np.zeros(self.user.size, np.int64))
            rows = sum((s.rows for s in live), np.zeros(self.rows.size, np.int64))
            return sum(s.requests for s in live), sum(s.items for s in live), user, rows

    def figures(self, now: float, min_requests: int) -> tuple[int, int, list[Figure], list[Figure]]:
        """(requests, items, feature figures, score figures) over the window."""
        requests, items, user, rows = self.totals(now)
        enough = requests >= min_requests
        ref = self.reference
        user_refs = [ref.user[n] for n in USER_NAMES]
        row_figures = _figures([*ITEM_NAMES, *self.heads], self.row_refs, self.rows.split(rows),
                               enough)  # fmt: skip
        feats = [*_figures(list(USER_NAMES), user_refs, self.user.split(user), enough),
                 *row_figures[: len(ITEM_NAMES)]]  # fmt: skip
        return requests, items, feats, row_figures[len(ITEM_NAMES) :]


def _figures(
    names: list[str], refs: list[Binned], counts: list[np.ndarray], enough: bool
) -> list[Figure]:
    out = []
    for name, ref, c in zip(names, refs, counts, strict=True):
        served = fractions(c)
        out.append(Figure(name, psi(ref.fractions, served) if enough else None, ref, served))
    return out
