"""Re-ranking: diversity, freshness, exploration slots and fatigue."""

from __future__ import annotations

from fastapi import FastAPI

from services.reranking.chain import embedding_lookup, warm_up_rerank
from services.reranking.pipeline import build_rerank_chain
from services.reranking.routes import rerank
from services.reranking.settings import Settings
from shared.dependencies import Dependencies
from shared.model_loading import holder_for
from shared.service import create_app

MODEL_PARTS = ("item_index",)


def build_app(settings: Settings) -> FastAPI:
    """The reranking app; item embeddings load in the lifespan."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        holder = holder_for(settings, MODEL_PARTS, prepare=warm_up_rerank)
        await deps.models(holder)
        app.state.chain = build_rerank_chain(embedding_lookup(holder.require), settings.disabled())

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(rerank.router)
    return app
