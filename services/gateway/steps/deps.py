"""StepDeps: what the steps work with (the online store, the stage clients, fallback state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.filtering.stage import FilteringStage
from services.gateway.stage_clients import StageClient
from shared.online_store.store import FeatureReader
from shared.pipeline.knobs import KnobTable


@dataclass
class StepDeps:
    """Shared by every request of one gateway process."""

    store: FeatureReader
    stages: dict[str, StageClient]  # by stage name: candidates, filtering, ranking, reranking
    local_filtering: FilteringStage  # the filtering fallback runs the same chain here
    hydrated: tuple[str, ...]  # the store columns the item step reads (what components need)
    knobs: KnobTable  # the gateway's own step knobs (e.g. how deep re-ranking looks)
    last_trending: list[tuple[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
