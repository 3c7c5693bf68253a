"""TrendingSource: what is popular right now (windowed counters in the online store)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.pipeline.knobs import Knobs


class TrendingKnobs(Knobs, frozen=True):
    """How many trending items."""

    quota: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 50


class TrendingSource:
    """Non-personalised; also what every cold-start user gets."""

    name = "trending"
    needs = ()
    provides = ("source_trending",)
    Knobs = TrendingKnobs
    serves_unknown_users = True
    cpu_bound = False

    async def fetch(self, call: SourceCall, knobs: TrendingKnobs) -> SourceResult:
        """The ``quota`` top trending items with their trend scores."""
        pairs = await call.store.trending(knobs.quota, call.ctx.now)
        return SourceResult.from_pairs(self.name, pairs)
