"""Re-ranking: diversity, freshness, exploration slots and fatigue, per variant."""

from __future__ import annotations

from fastapi import FastAPI

from services.reranking.pipeline import build_reranking
from services.reranking.settings import Settings
from services.reranking.stage import SLOT
from services.reranking.warmup import warm_up_rerank
from shared.models.bundle import ModelBundle
from shared.models.item_indexer import ItemIndexer, sync_forever
from shared.models.settings import model_set_for
from shared.online_store.columns import STORE_COLUMN_NAMES
from shared.online_store.reader import OnlineStore
from shared.pipeline.components import check_wiring
from shared.pipeline.stage import stage_route
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app


def build_app(settings: Settings) -> Service:
    """The reranking app; item embeddings load in the lifespan, catalog additions sync in."""

    def prepare(bundle: ModelBundle) -> None:
        indexer.reapply(bundle)  # items added at run time survive a hot swap
        warm_up_rerank(bundle)

    models = model_set_for(settings, SLOT, ("item_index",), settings.service_name, prepare)
    stage = build_reranking(models, settings.disabled(), settings.plugins)
    check_wiring([*STORE_COLUMN_NAMES, "score"], [("reranking", stage.components)])
    indexer = ItemIndexer(None, models.bundles, settings.service_name)

    async def setup(_app: FastAPI, resources: Resources) -> None:
        # Optional: without Redis, items added at run time stay unknown here (zero embedding:
        # MMR compares them by genre only); re-ranking itself never needs it.
        redis = resources.redis(settings.redis_url, required=False, cluster=settings.redis_cluster)
        indexer.store = OnlineStore(redis)
        await resources.models(models)
        resources.background(
            sync_forever(indexer, settings.index_sync_s, settings.index_sync_lookback_s)
        )

    app = create_app(settings, setup, description=__doc__ or "")
    app.add_fast_route(stage_route(stage))
    return app
