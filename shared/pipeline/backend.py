"""StageBackend: how the orchestrator reaches the stages (in this process, or over HTTP).

``LocalStages`` calls the stage objects directly; the gateway's ``RemoteStages`` sends the
same values to the stage services. The orchestrator cannot tell them apart, which is what
makes the in-process pipeline an honest baseline for the microservice path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from shared.features import UserFeatures
from shared.online_store.types import UserState
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.items import ItemColumns
from shared.pipeline.rerank_state import RerankInput
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import Candidates, FilterResult, Reranked, Scores


class StageBackend(Protocol):
    """The four stage calls; each may raise (the orchestrator falls back)."""

    async def candidates(
        self, user_id: str, now: float, tunables: Tunables, user: asyncio.Task[UserState],
        timeout_s: float,
    ) -> Candidates:  # fmt: skip
        """Merged candidates (``user`` is the orchestrator's running read of the user)."""
        ...

    async def filter(self, batch: FilterInput, timeout_s: float) -> FilterResult:
        """The filter chain's survivors and removals."""
        ...

    async def rank(
        self, user: UserFeatures, items: ItemColumns, now: float,
        weights: dict[str, float] | None, timeout_s: float,
    ) -> Scores:  # fmt: skip
        """Ranker scores of ``items``."""
        ...

    async def rerank(self, inp: RerankInput, timeout_s: float) -> Reranked:
        """The final list."""
        ...


class Generator(Protocol):
    """The candidate generation stage object."""

    async def generate(
        self, user_id: str, now: float, tunables: Tunables, user: Awaitable[UserState] | None
    ) -> Candidates:
        """Merged candidates."""
        ...


class Filterer(Protocol):
    """The filtering stage object."""

    def apply(self, batch: FilterInput) -> FilterResult:
        """Survivors and removals."""
        ...


class Scorer(Protocol):
    """The ranking stage object."""

    def score(
        self, user: UserFeatures, items: ItemColumns, now: float, weights: dict[str, float] | None
    ) -> Scores:
        """Scores of a batch."""
        ...


class RerankerChain(Protocol):
    """The re-ranking stage object."""

    def rerank(self, inp: RerankInput) -> Reranked:
        """The final list."""
        ...


class LocalStages:
    """Every stage in this process: plain method calls, no serialisation."""

    def __init__(
        self,
        generator: Generator,
        filters: Filterer,
        scorer: Scorer,
        reranker: RerankerChain,
        versions: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.generator = generator
        self.filters = filters
        self.scorer = scorer
        self.reranker = reranker
        self.versions = versions

    async def candidates(
        self, user_id: str, now: float, tunables: Tunables, user: asyncio.Task[UserState],
        timeout_s: float,
    ) -> Candidates:  # fmt: skip
        """Run the generator on the orchestrator's user read (no second read)."""
        cands = await self.generator.generate(user_id, now, tunables, user)
        if self.versions is not None:
            cands.model_versions = self.versions()
        return cands

    async def filter(self, batch: FilterInput, timeout_s: float) -> FilterResult:
        """Apply the filter chain."""
        return self.filters.apply(batch)

    async def rank(
        self, user: UserFeatures, items: ItemColumns, now: float,
        weights: dict[str, float] | None, timeout_s: float,
    ) -> Scores:  # fmt: skip
        """Score with the ranker."""
        return self.scorer.score(user, items, now, weights)

    async def rerank(self, inp: RerankInput, timeout_s: float) -> Reranked:
        """Run the re-rank chain."""
        return self.reranker.rerank(inp)
