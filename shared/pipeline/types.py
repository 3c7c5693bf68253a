"""Columnar values passed between stages (numpy arrays, never per-item objects on the hot path)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SourceResult:
    """What one candidate source returned, or why it returned nothing."""

    source: str
    item_ids: list[str]
    scores: np.ndarray  # float32 [n]; meaning depends on the source (cosine, trend score, ...)
    error: str | None = None
    elapsed_ms: float = 0.0

    @classmethod
    def failed(cls, source: str, error: str, elapsed_ms: float = 0.0) -> SourceResult:
        """An empty result carrying the failure reason (fail-open)."""
        return cls(source, [], np.zeros(0, dtype=np.float32), error, elapsed_ms)


@dataclass
class SourceStatus:
    """Per-source outcome of one request: how many items it gave, how long, what went wrong."""

    n: int
    elapsed_ms: float
    error: str | None = None


@dataclass
class Candidates:
    """Merged, de-duplicated candidates in retrieval order, with provenance.

    ``provenance[source] = (rows, scores)``: the rows of ``item_ids`` that source found and the
    score it gave each, so an item found by several sources keeps every score.
    """

    item_ids: list[str]
    provenance: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    status: dict[str, SourceStatus] = field(default_factory=dict)
    model_versions: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    def retrieval_scores(self) -> np.ndarray:
        """A score that reproduces retrieval order (1 for the first item, falling linearly)."""
        n = len(self.item_ids)
        return (1.0 - np.arange(n, dtype=np.float32) / max(n, 1)).astype(np.float32)

    def sources_of(self, row: int) -> dict[str, float]:
        """The sources that found row ``row`` and their scores (for explanations)."""
        out: dict[str, float] = {}
        for name, (rows, scores) in self.provenance.items():
            hit = np.flatnonzero(rows == row)
            if hit.size:
                out[name] = float(scores[hit[0]])
        return out

    def take(self, rows: np.ndarray) -> Candidates:
        """The candidates at ``rows`` (in that order), provenance re-indexed."""
        rows = np.asarray(rows, dtype=np.int64)
        remap = np.full(len(self.item_ids), -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        prov = {}
        for name, (r, s) in self.provenance.items():
            new = remap[r]
            keep = new >= 0
            prov[name] = (new[keep], s[keep])
        ids = [self.item_ids[i] for i in rows]
        return Candidates(ids, prov, dict(self.status), dict(self.model_versions))


@dataclass
class Removed:
    """Items one filter removed, and why."""

    reason: str
    item_ids: list[str]


@dataclass
class FilterResult:
    """Rows that survived every filter (in input order) and the removals per reason."""

    kept: np.ndarray  # int64 rows into the filtered item list
    removed: list[Removed] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # filter names, in the order they ran

    def removed_counts(self) -> dict[str, int]:
        """Number of items removed per reason."""
        return {r.reason: len(r.item_ids) for r in self.removed}


@dataclass
class Scores:
    """Ranker output for a batch: one array per head and the blended final score."""

    score: np.ndarray  # float32 [n]
    heads: dict[str, np.ndarray] = field(default_factory=dict)
    model_version: str = ""


@dataclass
class Reranked:
    """The final list: rows into the re-ranker's input, with scores and explanations."""

    rows: np.ndarray  # int64 [k] rows into the input list, in served order
    score: np.ndarray  # float32 [k] final score (after adjustments)
    propensity: np.ndarray  # float32 [k] probability this item was placed here by the policy
    explored: np.ndarray  # bool [k] filled by an exploration slot
    adjustments: dict[str, np.ndarray] = field(default_factory=dict)  # name -> float32 [k]
    applied: list[str] = field(default_factory=list)
