"""ItemToItemSource: nearest neighbours of the user's most recent items' embeddings."""

from __future__ import annotations

import numpy as np

from services.candidate_generation.sources.base import SourceDeps
from shared.online_store.types import UserState
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import SourceResult


class ItemToItemSource:
    """More like what you just watched: one batched ANN query for the last few items."""

    name = "item_to_item"
    serves_unknown_users = False
    cpu_bound = True

    def __init__(
        self, deps: SourceDeps, quota: int, timeout_s: float, recent: int = 5, per_item: int = 30
    ) -> None:
        self.deps = deps
        self.quota = quota
        self.timeout_s = timeout_s
        self.recent = recent
        self.per_item = per_item

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        """Neighbours of the recent items, each scored by its best similarity, best first."""
        index = self.deps.models().index
        assert index is not None
        recent = list(user.features.history)[-self.recent :]
        rows = index.rows(recent)
        rows = rows[rows >= 0]
        if rows.size == 0:
            return SourceResult(self.name, [], np.zeros(0, dtype=np.float32))
        labels, sims = index.search(index.embeddings(index.ids(rows)), self.per_item + len(rows))
        labels, sims = labels.ravel(), sims.ravel()
        order = np.argsort(-sims, kind="stable")
        labels, sims = labels[order], sims[order]
        uniq, first = np.unique(labels, return_index=True)
        keep = first[~np.isin(uniq, rows)]  # the query items themselves are not candidates
        keep.sort()
        keep = keep[: self.quota]
        return SourceResult(self.name, index.ids(labels[keep]), sims[keep])
