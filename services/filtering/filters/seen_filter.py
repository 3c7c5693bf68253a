"""SeenFilter: drops items the user already watched, rated or otherwise interacted with."""

from __future__ import annotations

import numpy as np

from shared.frame import Frame
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import NoKnobs


class SeenFilter:
    """The store's ``seen`` column (interactions, not mere impressions: fatigue handles those)."""

    name = "seen"
    needs = ("seen",)
    provides = ()
    Knobs = NoKnobs

    def keep(self, frame: Frame, ctx: RequestContext, knobs: NoKnobs) -> np.ndarray:
        """Keep what the user has not interacted with."""
        return ~frame["seen"]
