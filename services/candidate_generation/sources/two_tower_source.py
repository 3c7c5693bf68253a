"""TwoTowerSource: the user tower's embedding, then the ANN index's top-N items."""

from __future__ import annotations

from typing import Annotated

import msgspec

from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.pipeline.knobs import Knobs
from shared.pipeline.user_feeds import user_tower_feeds


class TwoTowerKnobs(Knobs, frozen=True):
    """How deep the ANN query goes."""

    quota: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 200  # what the ranker trained on


class TwoTowerSource:
    """Personalised retrieval; a user without history is embedded from profile features alone."""

    name = "two_tower"
    needs = ()
    provides = ("source_two_tower",)
    Knobs = TwoTowerKnobs
    serves_unknown_users = False  # an unknown user has no profile: segment + trending serve them
    cpu_bound = True

    async def fetch(self, call: SourceCall, knobs: TwoTowerKnobs) -> SourceResult:
        """Top ``quota`` items outside the user's stored history by cosine similarity to the
        user embedding: items the seen filter would remove anyway do not eat the quota (as the
        ranker was trained)."""
        tower, index = call.bundle.user_tower, call.bundle.index
        assert tower is not None and index is not None
        feeds = user_tower_feeds(call.ctx.user, call.ctx.now, tower.config)
        emb = tower.run(feeds)["user_embedding"]
        labels, sims = index.search_excluding(emb[0], knobs.quota, call.history_rows())
        return SourceResult(self.name, index.ids(labels), sims)
