"""RerankState: the ranked list as columns, which each re-ranker adjusts in turn."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.pipeline.tunables import Tunables
from shared.pipeline.types import Reranked


@dataclass
class RerankState:
    """Columns of the items being re-ranked; ``order`` stays None until a selector fills it."""

    item_ids: list[str]
    base_score: np.ndarray  # float32 ranker score
    genres: np.ndarray  # float32 [n, N_GENRES] multi-hot
    added_ts: np.ndarray  # float64 epoch seconds (0 unknown)
    impressions: np.ndarray  # int64 times already shown to this user
    embeddings: np.ndarray  # float32 [n, d] L2-normalised; zero rows when unknown
    k: int
    now: float
    seed: int
    tunables: Tunables
    score: np.ndarray = field(init=False)
    active: np.ndarray = field(init=False)
    propensity: np.ndarray = field(init=False)
    explored: np.ndarray = field(init=False)
    order: np.ndarray | None = None
    adjustments: dict[str, np.ndarray] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        self.score = np.asarray(self.base_score, dtype=np.float32).copy()
        self.active = np.ones(n, dtype=bool)
        self.propensity = np.ones(n, dtype=np.float32)
        self.explored = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.item_ids)

    def adjust(self, name: str, delta: np.ndarray) -> None:
        """Add ``delta`` to the scores and remember it under ``name`` (for explanations)."""
        d = np.asarray(delta, dtype=np.float32)
        self.score = self.score + d
        self.adjustments[name] = self.adjustments.get(name, np.zeros_like(d)) + d

    def top_active(self, k: int) -> np.ndarray:
        """Rows of the ``k`` best active items by current score."""
        rows = np.flatnonzero(self.active)
        if rows.size > k:
            part = np.argpartition(-self.score[rows], k - 1)[:k]
            rows = rows[part]
        return rows[np.argsort(-self.score[rows], kind="stable")]

    def result(self) -> Reranked:
        """The served list: ``order`` (or the top-k by score when no selector ran)."""
        rows = self.order if self.order is not None else self.top_active(self.k)
        rows = np.asarray(rows, dtype=np.int64)[: self.k]
        return Reranked(
            rows=rows,
            score=self.score[rows],
            propensity=self.propensity[rows],
            explored=self.explored[rows],
            adjustments={name: adj[rows] for name, adj in self.adjustments.items()},
            applied=list(self.applied),
        )


@dataclass
class RerankInput:
    """What the re-ranking stage receives: the top ranked items as columns (wire-friendly)."""

    item_ids: list[str]
    score: np.ndarray  # float32 ranker score
    genre_mask: np.ndarray  # int64 genre bit masks (shared.pipeline.items.genre_mask)
    added_ts: np.ndarray  # float64
    impressions: np.ndarray  # int64 times shown to this user
    k: int
    now: float
    seed: int  # exploration randomness (derived from the request id: reproducible)
    tunables: Tunables

    def __len__(self) -> int:
        return len(self.item_ids)
