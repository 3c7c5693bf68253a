"""Filtering: removes seen, restricted, blocked and duplicate candidates."""

from __future__ import annotations

from fastapi import FastAPI

from services.filtering.pipeline import build_filter_chain
from services.filtering.routes import filter as filter_route
from services.filtering.settings import Settings
from shared.service import create_app


def build_app(settings: Settings) -> FastAPI:
    """The filtering app (stateless: no connections, no models)."""
    app = create_app(settings, None, description=__doc__ or "")
    app.state.filters = build_filter_chain(settings.disabled())
    app.include_router(filter_route.router)
    return app
