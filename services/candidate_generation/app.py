"""Candidate generation: two-tower + ANN and the other candidate sources."""

from __future__ import annotations

from fastapi import FastAPI

from services.candidate_generation.item_indexer import ItemIndexer
from services.candidate_generation.pipeline import build_generator
from services.candidate_generation.routes import candidates, items
from services.candidate_generation.settings import Settings
from services.candidate_generation.sources import SourceDeps
from shared.dependencies import Dependencies
from shared.model_loading import ModelHolder, locator_for
from shared.online_store import OnlineStore
from shared.pipeline.budget import load_budget
from shared.service import create_app

MODEL_PARTS = ("user_tower", "item_index")


def build_app(settings: Settings) -> FastAPI:
    """The candidate_generation app; connections and models open in the lifespan."""
    budget = load_budget(settings.latency_budget)

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        store = OnlineStore(deps.redis(settings.redis_url))
        locator = locator_for(
            settings.models_dir, settings.mlflow_uri, settings.model_alias,
            settings.model_cache_dir, MODEL_PARTS,
        )  # fmt: skip
        holder = ModelHolder(locator, MODEL_PARTS, settings.model_poll_s)
        deps.readiness.add("models", holder.check)
        deps.on_close(holder.stop)
        await holder.start()
        app.state.models = holder
        source_deps = SourceDeps(store, holder.require)
        app.state.generator = build_generator(
            source_deps, budget, settings.disabled(), settings.service_name
        )
        app.state.indexer = ItemIndexer(store, holder.require)

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(candidates.router)
    app.include_router(items.router)
    return app
