"""What a source works from (one ``SourceCall`` per request) and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.features import UserFeatures
from shared.models.bundle import ModelBundle
from shared.models.item_item import ItemSums
from shared.online_store.store import FeatureReader
from shared.pipeline.context import RequestContext


@dataclass
class SourceCall:
    """One request as the sources see it: its context, the user's features, the retrieval
    model version its variant names, and the online store (global lists)."""

    ctx: RequestContext
    user: UserFeatures
    bundle: ModelBundle
    store: FeatureReader
    _history_rows: np.ndarray | None = field(default=None, repr=False)
    _ease_sums: ItemSums | None = field(default=None, repr=False)

    def history_rows(self) -> np.ndarray:
        """The index labels of the user's stored history, oldest first (-1: not in the
        index); computed once per request, whichever source asks first."""
        if self._history_rows is None:
            index = self.bundle.index
            assert index is not None
            self._history_rows = index.rows(list(self.user.history))
        return self._history_rows

    def ease_sums(self) -> ItemSums | None:
        """The history's summed EASE weights to every item, shared by the EASE source and the
        candidates' ``ease_score`` (None: the bundle ships no weights)."""
        weights = self.bundle.item_item
        if weights is None or self.bundle.index is None:
            return None
        if self._ease_sums is None:
            self._ease_sums = weights.sums(self.history_rows())
        return self._ease_sums


@dataclass
class SourceResult:
    """What one source returned, or why it returned nothing."""

    source: str
    item_ids: list[str]
    scores: np.ndarray  # float32 [n]; meaning depends on the source (cosine, trend score, ...)
    error: str | None = None
    elapsed_ms: float = 0.0

    @classmethod
    def failed(cls, source: str, error: str, elapsed_ms: float = 0.0) -> SourceResult:
        """An empty result carrying the failure reason (fail-open)."""
        return cls(source, [], np.zeros(0, dtype=np.float32), error, elapsed_ms)

    @classmethod
    def from_pairs(cls, source: str, pairs: list[tuple[str, float]]) -> SourceResult:
        """A result from the store's (item_id, score) lists."""
        scores = np.fromiter((p[1] for p in pairs), np.float32, len(pairs))
        return cls(source, [p[0] for p in pairs], scores)
