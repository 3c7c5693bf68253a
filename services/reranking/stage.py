"""RerankingStage: the re-rankers in order over the top ranked items; the served list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from services.reranking.rerank_state import EmbeddingLookup, RerankState
from shared.frame import Frame
from shared.models.model_set import ModelSet
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import KnobTable
from shared.pipeline.stage import StageResult

SLOT = "retrieval"  # MMR compares items by the retrieval model's item embeddings


class RerankInfo(msgspec.Struct):
    """The re-rankers that ran, and whose embeddings MMR used."""

    applied: list[str]
    model: str = ""
    explore_pool: list[int] = []  # input rows exploration drew from (empty: none explored)


class RerankingStage:
    """Score adjusters first, then the selector (MMR), then slot-level policies (exploration).

    Takes the ranked items (best first) and answers the served list: for each served item its
    ``row`` in the input, ``final_score``, ``propensity``, ``explored`` and one
    ``adjust_<name>`` column per adjustment.
    """

    name = "reranking"
    path = "/v1/rerank"
    aligned = False
    info_type = RerankInfo

    def __init__(self, rerankers: Sequence[Any], models: ModelSet | None) -> None:
        self.components = list(rerankers)
        self.models = models
        self.knobs = KnobTable(self.components)

    def needs(self) -> tuple[str, ...]:
        """The ranker's score and every column a re-ranker reads."""
        return tuple(dict.fromkeys(["score", *(c for r in self.components for c in r.needs)]))

    def provides(self) -> tuple[str, ...]:
        """The served list's columns."""
        return ("row", "final_score", "propensity", "explored", "adjust_*")

    async def run(self, ctx: RequestContext, frame: Frame) -> StageResult[RerankInfo]:
        """Every re-ranker in order; the served list (at most ``ctx.k`` items)."""
        lookup, label = self._embeddings(ctx)
        state = RerankState(frame, ctx.k, ctx.now, ctx.seed, lookup)
        knobs = self.knobs.resolve(ctx.variant)
        for r in self.components:
            r.rerank(state, knobs[r.name])
        pool = state.explore_pool.tolist() if state.explored.any() else []
        return StageResult(state.served(), RerankInfo(state.applied, label, pool))

    def _embeddings(self, ctx: RequestContext) -> tuple[EmbeddingLookup | None, str]:
        if self.models is None:
            return None, ""
        bundle = self.models.get(ctx.variant.alias(SLOT))
        index = bundle.index
        if index is None:
            return None, ""
        return index.embeddings, bundle.labels.get("item_index", bundle.bundle_id)
