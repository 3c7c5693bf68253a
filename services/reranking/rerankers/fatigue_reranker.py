"""FatigueReranker: an item already shown X times is not shown again; fewer shows cost score."""

from __future__ import annotations

import numpy as np

from shared.pipeline.rerank_state import RerankState


class FatigueReranker:
    """Uses the per-user impression counts of the online store (``UserState.impressions``)."""

    name = "fatigue"

    def rerank(self, state: RerankState) -> None:
        """Drop items at the impression limit; penalise the others per earlier impression."""
        t = state.tunables
        shown = state.impressions.astype(np.float32)
        state.active &= state.impressions < t.fatigue_max_impressions
        state.adjust(self.name, -t.fatigue_penalty * shown)
        state.applied.append(self.name)
