"""InProcessPipeline: every stage in one process (tests, small deployments, the benchmark
baseline that the microservice path's overhead is measured against)."""

from __future__ import annotations

from collections.abc import Callable

from shared.pipeline.backend import Filterer, Generator, LocalStages, RerankerChain, Scorer
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.orchestrator import Orchestrator, RecommendRequest
from shared.pipeline.recommendation import Recommendation
from shared.pipeline.store import FeatureReader


class InProcessPipeline:
    """The same orchestrator as the gateway's, over stage objects called directly."""

    def __init__(
        self,
        store: FeatureReader,
        generator: Generator,
        filters: Filterer,
        scorer: Scorer,
        reranker: RerankerChain,
        budget: LatencyBudget,
        versions: Callable[[], dict[str, str]] | None = None,
        service: str = "inprocess",
    ) -> None:
        stages = LocalStages(generator, filters, scorer, reranker, versions)
        self.orchestrator = Orchestrator(store, stages, filters, budget, service)

    async def recommend(self, req: RecommendRequest) -> Recommendation:
        """The served list for one request."""
        return await self.orchestrator.recommend(req)
