"""Candidate generation: two-tower + ANN and the other candidate sources, per variant."""

from __future__ import annotations

from fastapi import FastAPI

from services.candidate_generation.pipeline import build_candidate_generation
from services.candidate_generation.routes import items
from services.candidate_generation.settings import Settings
from services.candidate_generation.stage import SLOT
from services.candidate_generation.warmup import warm_up_retrieval
from shared.models.bundle import ModelBundle
from shared.models.item_indexer import ItemIndexer, sync_forever
from shared.models.settings import model_set_for
from shared.online_store.reader import OnlineStore
from shared.pipeline.budget import load_budget
from shared.pipeline.stage import stage_route
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app

MODEL_PARTS = ("user_tower", "item_index")


def build_app(settings: Settings) -> Service:
    """The candidate_generation app; connections and models open in the lifespan."""
    budget = load_budget(settings.latency_budget)

    def prepare(bundle: ModelBundle) -> None:
        indexer.reapply(bundle)  # items added at run time survive a hot swap
        warm_up_retrieval(bundle)

    models = model_set_for(settings, SLOT, MODEL_PARTS, settings.service_name, prepare)
    indexer = ItemIndexer(None, models.bundles, settings.service_name)
    stage = build_candidate_generation(
        None, models, budget, settings.disabled(), settings.service_name
    )

    async def setup(app: FastAPI, resources: Resources) -> None:
        redis = resources.redis(settings.redis_url, cluster=settings.redis_cluster)
        store = OnlineStore(redis, cache_ttl_s=settings.read_cache_s)
        stage.store = indexer.store = store
        await resources.models(models)
        app.state.indexer = indexer
        resources.background(
            sync_forever(indexer, settings.index_sync_s, settings.index_sync_lookback_s)
        )

    app = create_app(settings, setup, description=__doc__ or "")
    app.add_fast_route(stage_route(stage))
    app.include_router(items.router)
    return app
