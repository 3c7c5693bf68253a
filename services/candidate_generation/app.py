"""Candidate generation: two-tower + ANN and the other candidate sources."""

from __future__ import annotations

from fastapi import FastAPI

from services.candidate_generation.pipeline import build_generator
from services.candidate_generation.routes import candidates, items
from services.candidate_generation.settings import Settings
from services.candidate_generation.sources import SourceDeps
from services.candidate_generation.warmup import warm_up_retrieval
from shared.dependencies import Dependencies
from shared.model_loading import ModelBundle, holder_for
from shared.online_store import OnlineStore
from shared.pipeline.budget import load_budget
from shared.pipeline.item_indexer import ItemIndexer, sync_forever
from shared.service import create_app

MODEL_PARTS = ("user_tower", "item_index")


def build_app(settings: Settings) -> FastAPI:
    """The candidate_generation app; connections and models open in the lifespan."""
    budget = load_budget(settings.latency_budget)

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        store = OnlineStore(deps.redis(settings.redis_url), cache_ttl_s=settings.read_cache_s)

        def prepare(bundle: ModelBundle) -> None:
            indexer.reapply(bundle)  # items added at run time survive a hot swap
            warm_up_retrieval(bundle)

        holder = holder_for(settings, MODEL_PARTS, prepare=prepare)
        indexer = ItemIndexer(store, holder.require, settings.service_name)
        await deps.models(holder)
        app.state.models = holder
        source_deps = SourceDeps(store, holder.require)
        app.state.generator = build_generator(
            source_deps, budget, settings.disabled(), settings.service_name
        )
        app.state.indexer = indexer
        deps.background(
            sync_forever(indexer, settings.index_sync_s, settings.index_sync_lookback_s)
        )

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(candidates.router)
    app.include_router(items.router)
    return app
