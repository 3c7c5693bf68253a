"""AgeRestrictionFilter: adult-only items for adults whose age is known."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from shared.frame import Frame
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import Knobs


class AgeRestrictionKnobs(Knobs, frozen=True):
    """The age from which restricted items may be shown."""

    adult_age: Annotated[int, msgspec.Meta(ge=0, le=150)] = 18


class AgeRestrictionFilter:
    """An unknown age counts as under age, and an item missing from the catalog counts as
    restricted: when in doubt, the restricted item is not shown."""

    name = "age_restricted"
    needs = ("found", "age_restricted")
    provides = ()
    Knobs = AgeRestrictionKnobs

    def keep(self, frame: Frame, ctx: RequestContext, knobs: AgeRestrictionKnobs) -> np.ndarray:
        """Keep known items, and restricted ones only for a user known to be an adult."""
        age = ctx.user.age
        found = frame["found"]
        if age is not None and age >= knobs.adult_age:
            return found.copy()
        return np.asarray(found & ~frame["age_restricted"], dtype=bool)
