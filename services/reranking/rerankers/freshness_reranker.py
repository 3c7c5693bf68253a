"""FreshnessReranker: a boost for recently added items that halves every half-life."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.reranking.rerank_state import RerankState
from shared.pipeline.knobs import Knobs


class FreshnessKnobs(Knobs, frozen=True):
    """The boost of a brand-new item and how fast it fades."""

    boost: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.1
    half_life_h: Annotated[float, msgspec.Meta(gt=0.0, le=24 * 365.0)] = 72.0


class FreshnessReranker:
    """New items have few interactions, so the ranker underrates them; this evens it out."""

    name = "freshness"
    needs = ("added_ts",)
    provides = ("adjust_freshness",)
    Knobs = FreshnessKnobs

    def rerank(self, state: RerankState, knobs: FreshnessKnobs) -> None:
        """Add ``boost * 0.5 ** (age / half_life)`` (0 for unknown added times)."""
        added = state.frame["added_ts"]
        age_h = np.maximum(state.now - added, 0.0) / 3600.0
        boost = knobs.boost * np.power(0.5, age_h / knobs.half_life_h)
        state.adjust(self.name, np.where(added > 0, boost, 0.0))
        state.applied.append(self.name)
