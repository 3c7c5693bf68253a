"""Filtering: removes seen, restricted, blocked and duplicate candidates."""

from __future__ import annotations

from fastapi import FastAPI

from services.filtering.settings import Settings
from shared.dependencies import Dependencies
from shared.service import create_app


def build_app(settings: Settings) -> FastAPI:
    """The filtering app; connections open in the lifespan, not at import."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        app.state.redis = deps.redis(settings.redis_url)

    return create_app(settings, setup, description=__doc__ or "")
