"""The candidate sources of this service, declared as data: order, quota, kill switch.

Order matters: the first source is the primary one (its tail is cut first when the merged list
exceeds ``max_candidates``) and the merged list keeps this order (the "retrieval order" that
the gateway falls back to when ranking fails). Deadlines come from config/latency_budget.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.candidate_generation.generator import CandidateGenerator
from services.candidate_generation.sources import (
    FreshItemsSource,
    ItemToItemSource,
    SegmentPopularSource,
    SourceDeps,
    TrendingSource,
    TwoTowerSource,
)
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.stages import CandidateSource


@dataclass(frozen=True)
class SourceSpec:
    """One source in the list: its class, quota, extra arguments and kill switch."""

    cls: type[Any]
    quota: int
    enabled: bool = True
    options: tuple[tuple[str, Any], ...] = ()


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(TwoTowerSource, quota=500),
    SourceSpec(ItemToItemSource, quota=100, options=(("recent", 5), ("per_item", 30))),
    SourceSpec(FreshItemsSource, quota=25, options=(("max_age_s", 7 * 86_400.0),)),
    SourceSpec(SegmentPopularSource, quota=50),
    SourceSpec(TrendingSource, quota=50),
)


def build_sources(
    deps: SourceDeps,
    budget: LatencyBudget,
    specs: tuple[SourceSpec, ...] = SOURCES,
    disabled: frozenset[str] = frozenset(),
) -> list[CandidateSource]:
    """Instantiate the enabled sources with their deadlines from the latency budget."""
    out: list[CandidateSource] = []
    for spec in specs:
        name = spec.cls.name
        if spec.enabled and name not in disabled:
            out.append(spec.cls(deps, spec.quota, budget.source_s(name), **dict(spec.options)))
    return out


def build_generator(
    deps: SourceDeps,
    budget: LatencyBudget,
    disabled: frozenset[str] = frozenset(),
    service: str = "pipeline",
) -> CandidateGenerator:
    """The candidate generation stage as declared above."""
    sources = build_sources(deps, budget, disabled=disabled)
    return CandidateGenerator(sources, deps.store, service, budget.stage_s("user_features"))
