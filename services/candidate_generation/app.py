"""Candidate generation: two-tower + ANN and the other candidate sources."""

from __future__ import annotations

from fastapi import FastAPI

from services.candidate_generation.settings import Settings
from shared.dependencies import Dependencies
from shared.service import create_app


def build_app(settings: Settings) -> FastAPI:
    """The candidate_generation app; connections open in the lifespan, not at import."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        app.state.redis = deps.redis(settings.redis_url)

    return create_app(settings, setup, description=__doc__ or "")
