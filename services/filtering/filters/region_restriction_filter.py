"""RegionRestrictionFilter: items licensed only in some regions."""

from __future__ import annotations

from itertools import compress

import numpy as np

from shared.frame import Frame
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import NoKnobs


class RegionRestrictionFilter:
    """An item with a region list is shown only in those regions; a user whose region is
    unknown sees only unrestricted items."""

    name = "region_restricted"
    needs = ("regions",)
    provides = ()
    Knobs = NoKnobs

    def keep(self, frame: Frame, ctx: RequestContext, knobs: NoKnobs) -> np.ndarray:
        """Keep unrestricted items and those licensed in the user's region."""
        regions = frame.text("regions")
        keep = np.ones(len(regions), dtype=bool)
        region = ctx.user.region
        for row in compress(range(len(regions)), regions):  # only restricted items (few)
            keep[row] = region is not None and region in regions[row].split("|")
        return keep
