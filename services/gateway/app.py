"""Gateway: orchestrates the stages of a recommendation request."""

from __future__ import annotations

from fastapi import FastAPI

from services.gateway.settings import Settings
from shared.dependencies import Dependencies
from shared.service import create_app


def build_app(settings: Settings) -> FastAPI:
    """The gateway app; connections open in the lifespan, not at import."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        # The served-list log is best effort: a broker outage must not stop recommendations.
        app.state.producer = deps.kafka_producer(settings.kafka_bootstrap, required=False)

    return create_app(settings, setup, description=__doc__ or "")
