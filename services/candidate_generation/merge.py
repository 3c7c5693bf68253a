"""Merge the sources' results into one de-duplicated candidate frame that keeps provenance."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Annotated

import msgspec
import numpy as np

from services.candidate_generation.sources.base import SourceResult
from shared.frame import Frame
from shared.pipeline.knobs import Knobs


class MergeKnobs(Knobs, frozen=True):
    """The cap on the merged list."""

    max_candidates: Annotated[int, msgspec.Meta(ge=10, le=5000)] = 400


class Merge:
    """Union in source order (first source first); every source that found an item keeps its
    score in the item's ``source_<name>`` column (NaN where it did not find it).

    Past ``max_candidates`` the tail of the first (primary, usually largest) source is dropped
    first, so the smaller sources keep their reserved share of the list.
    """

    name = "merge"
    needs = ()
    provides = ()
    Knobs = MergeKnobs

    def merge(self, results: Sequence[SourceResult], knobs: MergeKnobs) -> Frame:
        """The merged frame, in retrieval order."""
        # dict.fromkeys keeps first occurrences in order; every loop below runs in C
        merged = list(dict.fromkeys(chain.from_iterable(r.item_ids for r in results)))
        row_of = dict(zip(merged, range(len(merged)), strict=True))
        found: list[tuple[str, np.ndarray, np.ndarray]] = []
        for res in results:
            rows = np.fromiter(map(row_of.__getitem__, res.item_ids), np.int64, len(res.item_ids))
            scores = np.asarray(res.scores, dtype=np.float32)
            if len(set(res.item_ids)) < len(res.item_ids):
                # a source listed an item twice: keep its first (best) score only
                rows, first = np.unique(rows, return_index=True)
                scores = scores[first]
            found.append((res.source, rows, scores))
        n = len(merged)
        frame = Frame(merged)
        for source, rows, scores in found:
            col = np.full(n, np.nan, dtype=np.float32)
            col[rows] = scores
            frame.columns[f"source_{source}"] = col
        if n > knobs.max_candidates and found:
            frame = frame.take(_keep_rows(frame, found[0][0], knobs.max_candidates))
        return frame


def _keep_rows(frame: Frame, primary: str, cap: int) -> np.ndarray:
    """Rows to keep: drop primary-only rows from the primary's tail, then truncate."""
    n = len(frame)
    mine = ~np.isnan(frame[f"source_{primary}"])
    elsewhere = np.zeros(n, dtype=bool)
    for name in frame:
        if name != f"source_{primary}":
            elsewhere |= ~np.isnan(frame[name])
    droppable = np.flatnonzero(mine & ~elsewhere)[::-1]  # tail first
    keep = np.ones(n, dtype=bool)
    keep[droppable[: n - cap]] = False
    return np.flatnonzero(keep)[:cap]
