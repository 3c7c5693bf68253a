"""Online feature store: batched user and item feature reads from Redis, catalog writes.

Reads go through ``shared.online_store.OnlineStore`` (one pipeline round trip per call); the
routes only translate HTTP. The ingest worker (``services.ingest``) is the stream writer.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisClusterException, RedisError

from services.feature_store.keeper import StoreKeeper, check_bootstrap_data
from services.feature_store.routes import catalog, features
from services.feature_store.settings import Settings
from shared.online_store.reader import OnlineStore
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app


def build_app(settings: Settings) -> Service:
    """The feature_store app; connections open in the lifespan, not at import."""
    data = check_bootstrap_data(settings.bootstrap_data) if settings.bootstrap_data else None

    async def setup(app: FastAPI, deps: Resources) -> None:
        app.state.redis = deps.redis(settings.redis_url, cluster=settings.redis_cluster)
        app.state.store = OnlineStore(app.state.redis, store=settings.store_config())
        if data is not None:
            keeper = StoreKeeper(
                settings.redis_url, data, settings.bootstrap_check_s, settings.redis_cluster
            )

            async def kept() -> tuple[bool, str]:  # informational: reads serve meanwhile
                return keeper.state.startswith("ok"), keeper.state

            deps.readiness.add("store_keeper", kept, required=False)
            deps.background(keeper.run_forever())

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(features.router)
    app.include_router(catalog.router)
    app.reads.read_posts.add("/v1/items/features")  # a read with a list of ids

    @app.exception_handler(RedisError)
    @app.exception_handler(RedisClusterException)
    async def redis_down(_: Request, exc: Exception) -> JSONResponse:
        """A dead Redis (or a cluster with no node reachable) is a 503 the caller can fall
        back on, never a 500."""
        return JSONResponse({"detail": f"redis unavailable: {exc}"}, status_code=503)

    return app
