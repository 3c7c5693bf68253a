"""EaseSource: EASE's linear item-to-item scores over the user's whole stored history."""

from __future__ import annotations

from typing import Annotated

import msgspec

from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.pipeline.knobs import Knobs


class EaseKnobs(Knobs, frozen=True):
    """How many items the source returns."""

    quota: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 100


class EaseSource:
    """Score = sum of EASE weights from every history item (the store keeps the last 100), from
    the top weights per item the bundle ships (item_index/item_item.npz)."""

    name = "ease"
    needs = ()
    provides = ("source_ease",)
    Knobs = EaseKnobs
    serves_unknown_users = False
    cpu_bound = True

    async def fetch(self, call: SourceCall, knobs: EaseKnobs) -> SourceResult:
        """Top ``quota`` unseen items by summed weight, best first."""
        sums, index = call.ease_sums(), call.bundle.index
        if sums is None or index is None:
            return SourceResult.failed(self.name, "the bundle has no item_index/item_item.npz")
        labels, scores = sums.top(knobs.quota)
        return SourceResult(self.name, index.ids(labels), scores)
