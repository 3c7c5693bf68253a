"""SeenFilter: drops items the user already watched, rated or otherwise interacted with."""

from __future__ import annotations

import numpy as np

from services.filtering.filters.base import membership, outcome
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.types import Removed


class SeenFilter:
    """The online store's seen set (interactions, not mere impressions: fatigue handles those)."""

    name = "seen"

    def apply(self, batch: FilterInput) -> tuple[np.ndarray, Removed]:
        """Remove items in ``user.seen``."""
        return outcome(batch, ~membership(batch.item_ids, batch.user.seen), self.name)
