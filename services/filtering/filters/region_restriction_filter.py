"""RegionRestrictionFilter: items licensed only in some regions."""

from __future__ import annotations

import numpy as np

from services.filtering.filters.base import outcome
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.types import Removed


class RegionRestrictionFilter:
    """An item with a region list is shown only in those regions; a user whose region is
    unknown sees only unrestricted items."""

    name = "region_restricted"

    def apply(self, batch: FilterInput) -> tuple[np.ndarray, Removed]:
        """Remove items not available in the user's region."""
        region = batch.user.region
        regions = batch.regions
        keep = np.fromiter(
            (not r or (region is not None and region in r) for r in regions), bool, len(regions)
        )
        return outcome(batch, keep, self.name)
