"""TwoTowerSource: the user tower's embedding, then the ANN index's top-N items."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.features import encode_user_tower
from shared.pipeline.knobs import Knobs


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
        user embedding: the ANN is asked for ``quota`` + the history's length, so items the
        seen filter would remove anyway do not eat the quota (as the ranker was trained)."""
        tower, index = call.bundle.user_tower, call.bundle.index
        assert tower is not None and index is not None
        feeds = encode_user_tower([call.user], call.ctx.now, tower.config)
        emb = tower.run(feeds)["user_embedding"]
        history = np.unique(index.rows(list(call.user.history)))
        labels, sims = index.search(emb, knobs.quota + len(history))
        keep = np.flatnonzero(~np.isin(labels[0], history))[: knobs.quota]
        return SourceResult(self.name, index.ids(labels[0][keep]), sims[0][keep])
