"""FreshnessReranker: a boost for recently added items that halves every half-life."""

from __future__ import annotations

import numpy as np

from shared.pipeline.rerank_state import RerankState


class FreshnessReranker:
    """New items have few interactions, so the ranker underrates them; this evens it out."""

    name = "freshness"

    def rerank(self, state: RerankState) -> None:
        """Add ``freshness_boost * 0.5 ** (age / half_life)`` (0 for unknown added times)."""
        t = state.tunables
        age_h = np.maximum(state.now - state.added_ts, 0.0) / 3600.0
        boost = t.freshness_boost * np.power(0.5, age_h / t.freshness_half_life_h)
        state.adjust(self.name, np.where(state.added_ts > 0, boost, 0.0))
        state.applied.append(self.name)
