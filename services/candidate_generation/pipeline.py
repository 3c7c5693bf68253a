"""The candidate sources of this service, declared as data: order, kill switch, knobs.

Order matters: the first source is the primary one (its tail is cut first when the merged list
exceeds ``max_candidates``) and the merged list keeps this order (the "retrieval order" that
the gateway falls back to when ranking fails). Each source's quota and options are its knobs
(defaults in its file, overridable per variant); deadlines come from config/latency_budget.yaml.
"""

from __future__ import annotations

from typing import Any

from services.candidate_generation.sources import (
    EaseSource,
    FreshItemsSource,
    ItemToItemSource,
    SegmentPopularSource,
    TrendingSource,
    TwoTowerSource,
)
from services.candidate_generation.stage import CandidateGenerationStage
from shared.models.model_set import ModelSet
from shared.online_store.store import FeatureReader
from shared.pipeline.budget import LatencyBudget

SOURCES: tuple[type[Any], ...] = (
    TwoTowerSource,  # user tower -> ANN top 200
    EaseSource,  # EASE's top weights per item, summed over the stored history
    ItemToItemSource,  # neighbours of the last 5 history items
    FreshItemsSource,  # added in the last 7 days
    SegmentPopularSource,  # popular in the user's age x gender segment
    TrendingSource,  # time-decayed engagement
)


def build_candidate_generation(
    store: FeatureReader | None,
    models: ModelSet | None,
    budget: LatencyBudget,
    disabled: frozenset[str] = frozenset(),
    service: str = "pipeline",
) -> CandidateGenerationStage:
    """The candidate generation stage as declared above (``disabled`` names are skipped)."""
    sources = [cls() for cls in SOURCES if cls.name not in disabled]
    return CandidateGenerationStage(sources, store, models, budget, service)
