"""RerankState: the ranked list as columns, which each re-ranker adjusts in turn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from shared.features.genre_mask import mask_to_multi_hot
from shared.frame import Frame

EmbeddingLookup = Callable[[list[str]], np.ndarray]


@dataclass
class RerankState:
    """The items being re-ranked (``frame``, best ranker score first) and what is decided.

    ``order`` stays None until a selector fills it; ``adjustments`` keeps each re-ranker's
    score change for explanations. Embeddings are looked up only when a re-ranker asks.
    """

    frame: Frame
    k: int
    now: float
    seed: int
    lookup: EmbeddingLookup | None = None
    score: np.ndarray = field(init=False)
    active: np.ndarray = field(init=False)
    propensity: np.ndarray = field(init=False)
    explored: np.ndarray = field(init=False)
    order: np.ndarray | None = None
    # rows an exploration slot drew from (uniformly): the logging policy's support, which
    # off-policy estimates of another ranker's pick need (shadow runs, services/gateway)
    explore_pool: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    adjustments: dict[str, np.ndarray] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.frame)
        self.score = np.asarray(self.frame["score"], dtype=np.float32).copy()
        self.active = np.ones(n, dtype=bool)
        self.propensity = np.ones(n, dtype=np.float32)
        self.explored = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def genres(self) -> np.ndarray:
        """[n, N_GENRES] float32 multi-hot."""
        return mask_to_multi_hot(self.frame["genre_mask"])

    @cached_property
    def embeddings(self) -> np.ndarray:
        """[n, d] L2-normalised item embeddings; zero rows (or d = 0) when unknown."""
        if self.lookup is None:
            return np.zeros((len(self), 0), dtype=np.float32)
        return self.lookup(self.frame.ids)

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

    def served(self) -> Frame:
        """The served list: ``order`` (or the top k by score when no selector ran)."""
        rows = self.order if self.order is not None else self.top_active(self.k)
        rows = np.asarray(rows, dtype=np.int64)[: self.k]
        out = Frame(
            [self.frame.ids[r] for r in rows.tolist()],
            {
                "row": rows,
                "final_score": self.score[rows],
                "propensity": self.propensity[rows],
                "explored": self.explored[rows],
            },
        )
        for name, adj in self.adjustments.items():
            out.columns[f"adjust_{name}"] = adj[rows]
        return out
