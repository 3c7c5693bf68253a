"""BlockedFilter: drops items the user hid or reported."""

from __future__ import annotations

import numpy as np

from services.filtering.filters.base import membership, outcome
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.types import Removed


class BlockedFilter:
    """Hidden and reported items never come back."""

    name = "blocked"

    def apply(self, batch: FilterInput) -> tuple[np.ndarray, Removed]:
        """Remove items in ``user.blocked``."""
        return outcome(batch, ~membership(batch.item_ids, batch.user.blocked), self.name)
