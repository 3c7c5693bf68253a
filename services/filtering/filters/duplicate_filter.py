"""DuplicateFilter: an item appears at most once in the list."""

from __future__ import annotations

import numpy as np

from services.filtering.filters.base import outcome
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.types import Removed


class DuplicateFilter:
    """Keeps the first occurrence of each item id (merging already de-duplicates; this guards
    lists that reach the filter from elsewhere, e.g. a fallback)."""

    name = "duplicate"

    def apply(self, batch: FilterInput) -> tuple[np.ndarray, Removed]:
        """Remove the second and later occurrences."""
        first: dict[str, int] = {}
        for row, item_id in enumerate(batch.item_ids):
            first.setdefault(item_id, row)  # a hash per id: no sort of Python strings
        keep = np.zeros(len(batch), dtype=bool)
        keep[np.fromiter(first.values(), np.int64, len(first))] = True
        return outcome(batch, keep, self.name)
