"""AgeRestrictionFilter: adult-only items for adults whose age is known."""

from __future__ import annotations

import numpy as np

from services.filtering.filters.base import outcome
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.types import Removed


class AgeRestrictionFilter:
    """An unknown age counts as under age, and an item missing from the catalog counts as
    restricted: when in doubt, the restricted item is not shown."""

    name = "age_restricted"

    def __init__(self, adult_age: int = 18) -> None:
        self.adult_age = adult_age

    def apply(self, batch: FilterInput) -> tuple[np.ndarray, Removed]:
        """Remove restricted (or unknown) items unless the user is known to be an adult."""
        age = batch.user.age
        if age is not None and age >= self.adult_age:
            keep = np.asarray(batch.found, dtype=bool).copy()
        else:
            keep = batch.found & ~batch.age_restricted
        return outcome(batch, keep, self.name)
