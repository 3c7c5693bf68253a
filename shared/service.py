"""The thin FastAPI shell every Cascade service shares: health, readiness, metrics, request ids.

Stage logic lives in plain classes; a service's app module only wires routes to them. Heavy
artifacts (models, indexes, connections) are created in the lifespan, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from shared.dependencies import Dependencies
from shared.logging import configure_logging, new_request_id, request_id_var
from shared.metrics import (
    SERVICE_INFO,
    ASGIApp,
    Receive,
    RequestMetricsMiddleware,
    Scope,
    Send,
    render_metrics,
)
from shared.readiness import Readiness
from shared.settings import ServiceSettings, load_settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
ServiceSetup = Callable[[FastAPI, Dependencies], Awaitable[None]]


class RequestIdMiddleware:
    """Takes X-Request-ID from the caller (or makes one), binds it to logs and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for key, value in scope.get("headers", []):
            if key == b"x-request-id":
                rid = value.decode("latin-1")[:64]
                break
        rid = rid or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def create_app(
    settings: ServiceSettings,
    setup: ServiceSetup | None = None,
    description: str = "",
) -> FastAPI:
    """Build a service app with /healthz, /readyz, /metrics and the shared middleware.

    ``setup`` runs in the lifespan: it opens connections through ``Dependencies`` (each one
    a readiness check) and loads heavy artifacts; everything is closed on shutdown.
    """
    name = settings.service_name
    readiness = Readiness(name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps = Dependencies(readiness)
        app.state.deps = deps
        try:
            if setup is not None:
                await setup(app, deps)
            yield
        finally:
            await deps.aclose()

    app = FastAPI(
        title=f"cascade {name}",
        description=description,
        version=VERSION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = readiness
    app.add_middleware(RequestMetricsMiddleware, service=name)
    app.add_middleware(RequestIdMiddleware)
    SERVICE_INFO.labels(name, VERSION).set(1)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up and its event loop answers."""
        return {"status": "ok", "service": name}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> Response:
        """Readiness with the reason for every dependency; 503 until all required ones pass."""
        ready, details = await readiness.evaluate()
        body = {"ready": ready, "service": name, "checks": details}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus text exposition."""
        payload, content_type = render_metrics()
        return Response(payload, media_type=content_type)

    return app


ServiceSettingsT = TypeVar("ServiceSettingsT", bound=ServiceSettings)


def run_service(
    settings_cls: type[ServiceSettingsT], build_app: Callable[[ServiceSettingsT], FastAPI]
) -> None:
    """Entry point of a service process: settings (exit on invalid), logging, uvicorn."""
    settings = load_settings(settings_cls)
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    app = build_app(settings)
    log.info("starting", extra={"host": settings.host, "port": settings.port})
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
