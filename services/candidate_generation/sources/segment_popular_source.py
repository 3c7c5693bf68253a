"""SegmentPopularSource: the most popular items among users like this one (age × gender)."""

from __future__ import annotations

from services.candidate_generation.sources.base import SourceDeps, from_pairs
from shared.online_store.types import UserState
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import SourceResult


class SegmentPopularSource:
    """Popularity within the user's segment; an unknown user gets the store's default segment."""

    name = "segment_popular"
    serves_unknown_users = True
    cpu_bound = False

    def __init__(self, deps: SourceDeps, quota: int, timeout_s: float) -> None:
        self.deps = deps
        self.quota = quota
        self.timeout_s = timeout_s

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        """The ``quota`` most popular items of ``user.segment``."""
        pairs = await self.deps.store.popular_in_segment(user.segment, self.quota)
        return from_pairs(self.name, pairs)
