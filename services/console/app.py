"""Web console: pages (static HTML, CSS and JavaScript from this package, no CDN, no build)
and the JSON API they call, which reads from and writes through the other services.

``GET /`` is the console; ``/api/...`` its backend (docs/console.md). Writes are passed on to
the events API and the rollouts service with the caller's ``Authorization`` header.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.console.console import Console
from services.console.routes import health, latency, monitors, pages, rollouts, tryit
from services.console.settings import Settings
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app

STATIC = Path(__file__).resolve().parent / "static"


def build_app(settings: Settings) -> Service:
    """The console; its clients open and its scrape loop starts in the lifespan."""

    async def setup(app: FastAPI, resources: Resources) -> None:
        console = Console(settings)
        app.state.console = console
        resources.on_close(console.aclose)
        resources.background(console.scrape_forever())

    app = create_app(settings, setup, description=__doc__ or "")
    for module in (pages, tryit, health, monitors, rollouts, latency):
        app.include_router(module.router)
    app.api.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The page and its scripts hold no data (the person types a token into the page, which
    # sends it with its calls to /api): they load where reads are protected too.
    app.reads.open_paths.add("/")
    app.reads.open_prefixes = ("/static/",)
    return app
