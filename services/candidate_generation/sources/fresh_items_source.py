"""FreshItemsSource: recently added items, so new items get impressions (item cold start)."""

from __future__ import annotations

import numpy as np

from services.candidate_generation.sources.base import SourceDeps
from shared.online_store.types import UserState
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import SourceResult


class FreshItemsSource:
    """Newest first; the score is freshness in [0, 1] (1 = added just now)."""

    name = "fresh_items"
    serves_unknown_users = True
    cpu_bound = False

    def __init__(
        self, deps: SourceDeps, quota: int, timeout_s: float, max_age_s: float = 7 * 86_400.0
    ) -> None:
        self.deps = deps
        self.quota = quota
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        """Up to ``quota`` items added within ``max_age_s``."""
        pairs = await self.deps.store.fresh_items(self.quota, now, self.max_age_s)
        ids = [p[0] for p in pairs]
        added = np.fromiter((p[1] for p in pairs), np.float64, len(pairs))
        fresh = np.clip(1.0 - (now - added) / self.max_age_s, 0.0, 1.0).astype(np.float32)
        return SourceResult(self.name, ids, fresh)
