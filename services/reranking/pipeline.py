"""The re-rankers of this service, declared as data, in the order they run."""

from __future__ import annotations

from services.reranking.chain import EmbeddingLookup, RerankChain
from services.reranking.rerankers import (
    ExplorationReranker,
    FatigueReranker,
    FreshnessReranker,
    MMRReranker,
)
from shared.pipeline.stages import Reranker

RERANKERS: tuple[type[Reranker], ...] = (
    FatigueReranker,  # drop over-shown items, penalise the rest per impression
    FreshnessReranker,  # boost new items
    MMRReranker,  # select k: relevance vs. redundancy, with a cap per genre
    ExplorationReranker,  # open a few slots to items just below the list
)


def build_rerank_chain(
    embeddings: EmbeddingLookup | None, disabled: frozenset[str] = frozenset()
) -> RerankChain:
    """The re-ranking stage as declared above (``disabled`` names are skipped)."""
    rerankers = [cls() for cls in RERANKERS]
    return RerankChain([r for r in rerankers if r.name not in disabled], embeddings)
