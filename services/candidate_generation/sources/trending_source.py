"""TrendingSource: what is popular right now (windowed counters in the online store)."""

from __future__ import annotations

from services.candidate_generation.sources.base import SourceDeps, from_pairs
from shared.online_store.types import UserState
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import SourceResult


class TrendingSource:
    """Non-personalised; also what every cold-start user gets."""

    name = "trending"
    serves_unknown_users = True
    cpu_bound = False

    def __init__(self, deps: SourceDeps, quota: int, timeout_s: float) -> None:
        self.deps = deps
        self.quota = quota
        self.timeout_s = timeout_s

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        """The ``quota`` top trending items with their trend scores."""
        return from_pairs(self.name, await self.deps.store.trending(self.quota, now))
