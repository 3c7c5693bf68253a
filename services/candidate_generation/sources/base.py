"""What a source works from (one ``SourceCall`` per request) and what it returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.features import UserFeatures
from shared.models.bundle import ModelBundle
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
