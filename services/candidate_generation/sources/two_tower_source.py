"""TwoTowerSource: the user tower's embedding, then the ANN index's top-N items."""

from __future__ import annotations

from services.candidate_generation.sources.base import SourceDeps
from shared.features import encode_user_tower
from shared.online_store.types import UserState
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import SourceResult


class TwoTowerSource:
    """Personalised retrieval; a user without history is embedded from profile features alone."""

    name = "two_tower"
    serves_unknown_users = False  # an unknown user has no profile: segment + trending serve them
    cpu_bound = True

    def __init__(self, deps: SourceDeps, quota: int, timeout_s: float) -> None:
        self.deps = deps
        self.quota = quota
        self.timeout_s = timeout_s

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        """Top ``min(quota, ann_top_n)`` items by cosine similarity to the user embedding."""
        bundle = self.deps.models()
        assert bundle.user_tower is not None and bundle.index is not None
        feeds = encode_user_tower([user.features], now, bundle.user_tower.config)
        emb = bundle.user_tower.run(feeds)["user_embedding"]
        labels, sims = bundle.index.search(emb, min(self.quota, tunables.ann_top_n))
        return SourceResult(self.name, bundle.index.ids(labels[0]), sims[0])
