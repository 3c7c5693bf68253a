"""SegmentPopularSource: the most popular items among users like this one (age x gender)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.online_store.keys import ALL_SEGMENT
from shared.pipeline.knobs import Knobs


class SegmentPopularKnobs(Knobs, frozen=True):
    """How many popular items."""

    quota: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 50


class SegmentPopularSource:
    """Popularity within the user's segment; when that segment has no popularity yet (an
    unknown user, a segment nobody in the data belongs to) popularity among all users."""

    name = "segment_popular"
    needs = ()
    provides = ("source_segment_popular",)
    Knobs = SegmentPopularKnobs
    serves_unknown_users = True
    cpu_bound = False

    async def fetch(self, call: SourceCall, knobs: SegmentPopularKnobs) -> SourceResult:
        """The ``quota`` most popular items of the user's segment (else of every user)."""
        segment = call.ctx.user.segment
        now = call.ctx.now  # scores decayed to the request's clock, as trending's
        pairs = await call.store.popular_in_segment(segment, knobs.quota, now)
        if not pairs and segment != ALL_SEGMENT:
            pairs = await call.store.popular_in_segment(ALL_SEGMENT, knobs.quota, now)
        return SourceResult.from_pairs(self.name, pairs)
