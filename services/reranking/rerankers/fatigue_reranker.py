"""FatigueReranker: an item already shown X times is not shown again; fewer shows cost score."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.reranking.rerank_state import RerankState
from shared.pipeline.knobs import Knobs


class FatigueKnobs(Knobs, frozen=True):
    """How many impressions retire an item, and what each earlier one costs."""

    max_impressions: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 3
    penalty: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.1


class FatigueReranker:
    """Uses the per-user impression counts of the online store (the ``impressions`` column)."""

    name = "fatigue"
    needs = ("impressions",)
    provides = ("adjust_fatigue",)
    Knobs = FatigueKnobs

    def rerank(self, state: RerankState, knobs: FatigueKnobs) -> None:
        """Drop items at the impression limit; penalise the others per earlier impression."""
        shown = state.frame["impressions"]
        state.active &= shown < knobs.max_impressions
        state.adjust(self.name, -knobs.penalty * shown.astype(np.float32))
        state.applied.append(self.name)
