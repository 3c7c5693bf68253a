"""SegmentPopularSource: the most popular items among users like this one (age × gender)."""

from __future__ import annotations

from services.candidate_generation.sources.base import SourceDeps, from_pairs
from shared.online_store.keys import ALL_SEGMENT
from shared.online_store.types import UserState
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import SourceResult


class SegmentPopularSource:
    """Popularity within the user's segment; when that segment has no popularity yet (an
    unknown user, a segment nobody in the data belongs to) popularity among all users."""

    name = "segment_popular"
    serves_unknown_users = True
    cpu_bound = False

    def __init__(self, deps: SourceDeps, quota: int, timeout_s: float) -> None:
        self.deps = deps
        self.quota = quota
        self.timeout_s = timeout_s

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        """The ``quota`` most popular items of ``user.segment`` (else of every user)."""
        store = self.deps.store
        pairs = await store.popular_in_segment(user.segment, self.quota)
        if not pairs and user.segment != ALL_SEGMENT:
            pairs = await store.popular_in_segment(ALL_SEGMENT, self.quota)
        return from_pairs(self.name, pairs)
