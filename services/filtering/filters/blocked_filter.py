"""BlockedFilter: drops items the user hid or reported."""

from __future__ import annotations

import numpy as np

from shared.frame import Frame
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import NoKnobs


class BlockedFilter:
    """Hidden and reported items never come back (the store's ``blocked`` column)."""

    name = "blocked"
    needs = ("blocked",)
    provides = ()
    Knobs = NoKnobs

    def keep(self, frame: Frame, ctx: RequestContext, knobs: NoKnobs) -> np.ndarray:
        """Keep what the user did not block."""
        return ~frame["blocked"]
