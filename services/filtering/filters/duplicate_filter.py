"""DuplicateFilter: an item appears at most once in the list."""

from __future__ import annotations

import numpy as np

from shared.frame import Frame
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import NoKnobs


class DuplicateFilter:
    """Keeps the first occurrence of each item id (merging already de-duplicates; this guards
    lists that reach the filter from elsewhere, e.g. a fallback)."""

    name = "duplicate"
    needs = ()
    provides = ()
    Knobs = NoKnobs

    def keep(self, frame: Frame, ctx: RequestContext, knobs: NoKnobs) -> np.ndarray:
        """Keep the first occurrence of each id."""
        if len(set(frame.ids)) == len(frame):  # the usual case, one C-level pass
            return np.ones(len(frame), dtype=bool)
        first: dict[str, int] = {}
        for row, item_id in enumerate(frame.ids):
            first.setdefault(item_id, row)  # a hash per id: no sort of Python strings
        keep = np.zeros(len(frame), dtype=bool)
        keep[np.fromiter(first.values(), np.int64, len(first))] = True
        return keep
