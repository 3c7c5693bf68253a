"""Feature ingest worker: events topic → Redis online store, with health, readiness, metrics."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.ingest.settings import Settings
from services.ingest.worker import IngestWorker
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app


def build_app(settings: Settings) -> Service:
    """The ingest app: the consumer runs on a background thread started in the lifespan."""

    async def setup(app: FastAPI, deps: Resources) -> None:
        deps.redis(
            settings.redis_url, cluster=settings.redis_cluster
        )  # its PING is the Redis readiness check
        worker = IngestWorker(settings)

        async def kafka_ready() -> tuple[bool, str]:
            return await asyncio.to_thread(worker.ready)

        async def stop() -> None:
            await asyncio.to_thread(worker.stop)

        app.state.readiness.add("kafka", kafka_ready)
        deps.on_close(stop)
        app.state.worker = worker
        worker.start()

    return create_app(settings, setup, description=__doc__ or "")
