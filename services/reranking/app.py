"""Re-ranking: diversity, freshness, exploration slots and fatigue."""

from __future__ import annotations

from fastapi import FastAPI

from services.reranking.chain import embedding_lookup, warm_up_rerank
from services.reranking.pipeline import build_rerank_chain
from services.reranking.routes import rerank
from services.reranking.settings import Settings
from shared.dependencies import Dependencies
from shared.model_loading import ModelBundle, holder_for
from shared.online_store import OnlineStore
from shared.pipeline.item_indexer import ItemIndexer, sync_forever
from shared.service import create_app

MODEL_PARTS = ("item_index",)


def build_app(settings: Settings) -> FastAPI:
    """The reranking app; item embeddings load in the lifespan, catalog additions sync in."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        def prepare(bundle: ModelBundle) -> None:
            indexer.reapply(bundle)  # items added at run time survive a hot swap
            warm_up_rerank(bundle)

        holder = holder_for(settings, MODEL_PARTS, prepare=prepare)
        # Optional: without Redis, items added at run time stay unknown here (zero embedding:
        # MMR compares them by genre only); re-ranking itself never needs it.
        store = OnlineStore(deps.redis(settings.redis_url, required=False))
        indexer = ItemIndexer(store, holder.require, settings.service_name)
        await deps.models(holder)
        app.state.chain = build_rerank_chain(embedding_lookup(holder.require), settings.disabled())
        deps.background(
            sync_forever(indexer, settings.index_sync_s, settings.index_sync_lookback_s)
        )

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(rerank.router)
    return app
