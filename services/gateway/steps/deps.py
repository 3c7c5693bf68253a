"""StepDeps: what the steps work with (the online store, the stage clients, fallback state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from services.filtering.stage import FilteringStage
from services.gateway.stage_clients import StageClient
from shared.online_store.health import StoreWatch
from shared.online_store.store import FeatureReader
from shared.pipeline.knobs import KnobTable

if TYPE_CHECKING:
    from services.gateway.request_state import RequestState


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
    # Builds a client of a stage at another URL (a canary deployment); None: not supported.
    remote: Callable[[StageClient, str], StageClient] | None = None
    _elsewhere: dict[tuple[str, str], StageClient] = field(default_factory=dict)
    # Whether the store is whole (None: not watched, e.g. an in-memory store in tests).
    store_watch: StoreWatch | None = None

    def stage(self, req: RequestState, name: str) -> StageClient:
        """The client of stage ``name`` for this request (a canary's own deployment, if any)."""
        url = req.endpoints.get(name) if req.endpoints else None
        if url is None or self.remote is None:
            return self.stages[name]
        client = self._elsewhere.get((name, url))
        if client is None:
            client = self._elsewhere[(name, url)] = self.remote(self.stages[name], url)
        return client
