"""Merge the sources' results into one de-duplicated candidate list that keeps provenance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.pipeline.types import Candidates, SourceResult, SourceStatus


def merge_sources(results: Sequence[SourceResult], max_candidates: int) -> Candidates:
    """Union in source order (first source first); every source that found an item is kept.

    Past ``max_candidates`` the tail of the first (primary, usually largest) source is dropped
    first, so the smaller sources keep their reserved share of the list.
    """
    row_of: dict[str, int] = {}  # insertion order is the merged order
    prov: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    status: dict[str, SourceStatus] = {}
    for res in results:
        # setdefault gives a new id the next row (len is taken before the insert)
        new_row = row_of.setdefault
        rows = np.fromiter(
            (new_row(i, len(row_of)) for i in res.item_ids), np.int64, len(res.item_ids)
        )
        # a source may list an item twice: keep its first (best) score only
        rows, first = np.unique(rows, return_index=True)
        prov[res.source] = (rows, np.asarray(res.scores, dtype=np.float32)[first])
        status[res.source] = SourceStatus(len(res.item_ids), res.elapsed_ms, res.error)
    item_ids = list(row_of)
    merged = Candidates(item_ids, prov, status)
    if len(item_ids) > max_candidates and results:
        merged = merged.take(_keep_rows(merged, results[0].source, max_candidates))
    return merged


def _keep_rows(c: Candidates, primary: str, cap: int) -> np.ndarray:
    """Rows to keep: drop primary-only rows from the primary's tail, then truncate."""
    n = len(c.item_ids)
    found_elsewhere = np.zeros(n, dtype=bool)
    for name, (rows, _) in c.provenance.items():
        if name != primary:
            found_elsewhere[rows] = True
    primary_rows = c.provenance[primary][0]
    droppable = primary_rows[~found_elsewhere[primary_rows]][::-1]  # tail first
    drop = droppable[: n - cap]
    keep = np.ones(n, dtype=bool)
    keep[drop] = False
    return np.flatnonzero(keep)[:cap]
