"""The re-rankers of this service, declared as data, in the order they run."""

from __future__ import annotations

from typing import Any

from services.reranking.rerankers import (
    ExplorationReranker,
    FatigueReranker,
    FreshnessReranker,
    MMRReranker,
)
from services.reranking.stage import RerankingStage
from shared.models.model_set import ModelSet
from shared.pipeline.components import load_plugins

RERANKERS: tuple[type[Any], ...] = (
    FatigueReranker,  # drop over-shown items, penalise the rest per impression
    FreshnessReranker,  # boost new items
    MMRReranker,  # select k: relevance vs. redundancy, with a cap per genre
    ExplorationReranker,  # open a few slots to items just below the list
)


def build_reranking(
    models: ModelSet | None, disabled: frozenset[str] = frozenset(), plugins: str = ""
) -> RerankingStage:
    """The re-ranking stage as declared above (``disabled`` names are skipped)."""
    rerankers = [cls() for cls in RERANKERS] + load_plugins(plugins, "reranker")
    return RerankingStage([r for r in rerankers if r.name not in disabled], models)
