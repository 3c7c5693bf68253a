"""FreshItemsSource: recently added items, so new items get impressions (item cold start)."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.pipeline.knobs import Knobs


class FreshItemsKnobs(Knobs, frozen=True):
    """How many new items, and how new."""

    quota: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 25
    max_age_s: Annotated[float, msgspec.Meta(gt=0, le=365 * 86_400.0)] = 7 * 86_400.0


class FreshItemsSource:
    """Newest first; the score is freshness in [0, 1] (1 = added just now)."""

    name = "fresh_items"
    needs = ()
    provides = ("source_fresh_items",)
    Knobs = FreshItemsKnobs
    serves_unknown_users = True
    cpu_bound = False

    async def fetch(self, call: SourceCall, knobs: FreshItemsKnobs) -> SourceResult:
        """Up to ``quota`` items added within ``max_age_s``."""
        now = call.ctx.now
        pairs = await call.store.fresh_items(knobs.quota, now, knobs.max_age_s)
        added = np.fromiter((p[1] for p in pairs), np.float64, len(pairs))
        fresh = np.clip(1.0 - (now - added) / knobs.max_age_s, 0.0, 1.0).astype(np.float32)
        return SourceResult(self.name, [p[0] for p in pairs], fresh)
