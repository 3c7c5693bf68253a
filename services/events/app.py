"""Events API: validates user events and writes them to Kafka."""

from __future__ import annotations

from fastapi import FastAPI

from services.events.settings import Settings
from shared.dependencies import Dependencies
from shared.service import create_app


def build_app(settings: Settings) -> FastAPI:
    """The events app; connections open in the lifespan, not at import."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        app.state.producer = deps.kafka_producer(settings.kafka_bootstrap)

    return create_app(settings, setup, description=__doc__ or "")
