"""ItemToItemSource: nearest neighbours of the user's most recent items' embeddings."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.pipeline.knobs import Knobs


class ItemToItemKnobs(Knobs, frozen=True):
    """How many recent items seed the query, and how many neighbours each."""

    quota: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 100
    recent: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    per_item: Annotated[int, msgspec.Meta(ge=1, le=500)] = 30


class ItemToItemSource:
    """More like what you just watched: one batched ANN query for the last few items."""

    name = "item_to_item"
    needs = ()
    provides = ("source_item_to_item",)
    Knobs = ItemToItemKnobs
    serves_unknown_users = False
    cpu_bound = True

    async def fetch(self, call: SourceCall, knobs: ItemToItemKnobs) -> SourceResult:
        """Neighbours of the recent items, each scored by its best similarity, best first."""
        index = call.bundle.index
        assert index is not None
        rows = call.history_rows()[-knobs.recent :]
        rows = rows[rows >= 0]
        if rows.size == 0:
            return SourceResult(self.name, [], np.zeros(0, dtype=np.float32))
        labels, sims = index.neighbours(rows, knobs.per_item + len(rows))
        labels, sims = labels.ravel(), sims.ravel()
        order = np.argsort(-sims, kind="stable")
        labels, sims = labels[order], sims[order]
        uniq, first = np.unique(labels, return_index=True)
        keep = first[~np.isin(uniq, rows)]  # the query items themselves are not candidates
        keep.sort()
        keep = keep[: knobs.quota]
        return SourceResult(self.name, index.ids(labels[keep]), sims[keep])
