"""The four stages as the gateway knows them: declarations in services mode, objects in-process.

Declarations (no model, no store) are enough for what the gateway itself needs in services
mode: each stage's needs and provides (the wire, the wiring check, which store columns to
read) and its components' knobs (variants are checked against them at start). In in_process
mode the same classes are built with their models and the store, and called directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.candidate_generation.pipeline import build_candidate_generation
from services.candidate_generation.stage import CandidateGenerationStage
from services.candidate_generation.warmup import warm_up_retrieval
from services.filtering.pipeline import build_filtering
from services.filtering.stage import FilteringStage
from services.ranking.stage import RankingStage
from services.ranking.warmup import warm_up_ranker
from services.reranking.pipeline import build_reranking
from services.reranking.stage import RerankingStage
from services.reranking.warmup import warm_up_rerank
from shared.models.bundle import ModelBundle
from shared.models.item_indexer import ItemIndexer
from shared.models.model_set import ModelSet
from shared.models.settings import ModelSettings, model_set_for
from shared.online_store.columns import STORE_COLUMN_NAMES
from shared.online_store.store import FeatureReader
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.components import check_wiring

STAGE_ORDER = ("candidates", "filtering", "ranking", "reranking")
RESPONSE_COLUMNS = ("genre_mask", "release_year")  # what the answer shows of each item


@dataclass
class Stages:
    """The stage objects by name, plus what in-process mode loads for them."""

    candidates: CandidateGenerationStage
    filtering: FilteringStage
    ranking: RankingStage
    reranking: RerankingStage
    models: tuple[ModelSet, ...] = ()
    indexer: ItemIndexer | None = None

    def by_name(self) -> dict[str, Any]:
        """Stage name -> object, in pipeline order."""
        return {name: getattr(self, name) for name in STAGE_ORDER}

    def components(self) -> list[Any]:
        """Every component of every stage."""
        return [c for stage in self.by_name().values() for c in stage.components]

    def hydrated(self) -> tuple[str, ...]:
        """The store columns some component (or the answer) needs, in the store's order."""
        wanted = {c for stage in self.by_name().values() for c in stage.needs()}
        wanted.update(RESPONSE_COLUMNS)
        return tuple(c for c in STORE_COLUMN_NAMES if c in wanted)

    def check_wiring(self) -> None:
        """Each stage's needs are provided before it runs (WiringError names what is not)."""
        check_wiring(STORE_COLUMN_NAMES, [(n, s.components) for n, s in self.by_name().items()])


def declared_stages(budget: LatencyBudget, plugins: str = "") -> Stages:
    """The stages as declarations: what they need, provide and accept as knobs."""
    return Stages(
        build_candidate_generation(None, None, budget),
        build_filtering(plugins=plugins),
        RankingStage(None),
        build_reranking(None, plugins=plugins),
    )


def in_process_stages(
    settings: ModelSettings, store: FeatureReader, budget: LatencyBudget, service: str,
    plugins: str = "",
) -> Stages:  # fmt: skip
    """Every stage in this process, over its own model sets (retrieval and ranker)."""

    def prepare_retrieval(bundle: ModelBundle) -> None:
        indexer.reapply(bundle)
        warm_up_retrieval(bundle)
        warm_up_rerank(bundle)

    retrieval = model_set_for(
        settings, "retrieval", ("user_tower", "item_index"), service, prepare_retrieval
    )
    ranker = model_set_for(settings, "ranker", ("ranker",), service, warm_up_ranker)
    indexer = ItemIndexer(store, retrieval.bundles, service)
    return Stages(
        build_candidate_generation(store, retrieval, budget, service=service),
        build_filtering(plugins=plugins),
        RankingStage(ranker),
        build_reranking(retrieval, plugins=plugins),
        models=(retrieval, ranker),
        indexer=indexer,
    )
