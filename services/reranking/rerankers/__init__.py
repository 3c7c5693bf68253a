"""Re-rankers, one class per adjustment; each records what it did for explanations."""

from services.reranking.rerankers.exploration_reranker import ExplorationReranker
from services.reranking.rerankers.fatigue_reranker import FatigueReranker
from services.reranking.rerankers.freshness_reranker import FreshnessReranker
from services.reranking.rerankers.mmr_reranker import MMRReranker

__all__ = ["ExplorationReranker", "FatigueReranker", "FreshnessReranker", "MMRReranker"]
