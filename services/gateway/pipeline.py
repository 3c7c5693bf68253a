"""The recommendation pipeline, declared as data: read this file to know what a request does.

  1. user state (online store)         ∥  candidate generation (SOURCES, in this order)
  2. item attributes and counters (online store)
  3. filtering (FILTERS, cheapest first)
  4. ranking (SCORER: multi-task ONNX, blended heads)
  5. re-ranking (RERANKERS, in this order)

Deadlines: config/latency_budget.yaml. Fallbacks: shared/pipeline/orchestrator.py (documented
per stage in docs/serving.md). The same lists build the stage services and the in-process
pipeline, so both run identical stage code.
"""

from __future__ import annotations

from services.candidate_generation.pipeline import SOURCES, build_generator
from services.candidate_generation.sources import SourceDeps
from services.candidate_generation.warmup import warm_up_retrieval
from services.filtering.pipeline import FILTERS, build_filter_chain
from services.ranking.ranker import MultiTaskRanker, warm_up_ranker
from services.reranking.chain import embedding_lookup, warm_up_rerank
from services.reranking.pipeline import RERANKERS, build_rerank_chain
from shared.model_loading import ModelBundle, ModelHolder
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.inprocess import InProcessPipeline
from shared.pipeline.store import FeatureReader

SCORER = MultiTaskRanker
STAGES = {
    "candidates": SOURCES,
    "filtering": FILTERS,
    "ranking": (SCORER,),
    "reranking": RERANKERS,
}
ALL_MODEL_PARTS = ("user_tower", "item_index", "ranker")


def build_in_process(
    store: FeatureReader, holder: ModelHolder, budget: LatencyBudget, service: str = "inprocess"
) -> InProcessPipeline:
    """Every stage in this process, over one model holder with all model parts."""
    deps = SourceDeps(store, holder.require)
    return InProcessPipeline(
        store=store,
        generator=build_generator(deps, budget, service=service),
        filters=build_filter_chain(),
        scorer=SCORER(holder.require),
        reranker=build_rerank_chain(embedding_lookup(holder.require)),
        budget=budget,
        versions=lambda: holder.require().versions(),
        service=service,
    )


def warm_up_all(bundle: ModelBundle) -> None:
    """Every model-backed stage on production-size input, before ``bundle`` goes live."""
    warm_up_retrieval(bundle)
    warm_up_ranker(bundle)
    warm_up_rerank(bundle)
