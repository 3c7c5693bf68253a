"""FilterChain: runs the filters in order, each on the survivors of the previous ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.pipeline.filter_input import FilterInput
from shared.pipeline.stages import CandidateFilter
from shared.pipeline.types import FilterResult, Removed


class FilterChain:
    """Cheapest filters first, so the costlier ones see fewer items."""

    def __init__(self, filters: Sequence[CandidateFilter]) -> None:
        self.filters = list(filters)

    @property
    def names(self) -> list[str]:
        """Filter names in the order they run."""
        return [f.name for f in self.filters]

    def apply(self, batch: FilterInput) -> FilterResult:
        """Rows of ``batch`` that every filter kept, plus each filter's removals."""
        rows = np.arange(len(batch), dtype=np.int64)
        removed: list[Removed] = []
        current = batch
        for f in self.filters:
            keep, gone = f.apply(current)
            if gone.item_ids:
                removed.append(gone)
            if not keep.all():
                survivors = np.flatnonzero(keep)
                rows = rows[survivors]
                current = current.take(survivors)
        return FilterResult(rows, removed, self.names)
