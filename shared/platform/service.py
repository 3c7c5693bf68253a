"""The thin shell every Cascade service shares: health, readiness, metrics, request ids.

Stage logic lives in plain classes; a service's app module only wires routes to them. Heavy
artifacts (models, indexes, connections) are created in the lifespan, never at import. The
request path's routes are ``FastRoute`` handlers in front of FastAPI (see ``fast_routes``);
FastAPI serves the operational and admin routes and the OpenAPI document of all of them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from shared.platform.auth import AdminGuard, ReadGuard, ReadPolicy, settings_token
from shared.platform.contracts import declare_framework_answers
from shared.platform.fast_routes import ASGIApp, FastRoute, FastRoutes, Receive, Scope, Send
from shared.platform.fast_routes import add_to_openapi as _add_to_openapi
from shared.platform.logging import configure_logging, new_request_id, request_id_var
from shared.platform.metrics import SERVICE_INFO, RequestMetricsMiddleware, render_metrics
from shared.platform.readiness import Readiness
from shared.platform.resources import Resources
from shared.platform.settings import ServiceSettings, StartupError, load_settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
ServiceSetup = Callable[[FastAPI, Resources], Awaitable[None]]


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


class Service:
    """A service's ASGI app: its fast routes in front of its FastAPI app.

    ``reads`` says which requests are reads (a service adds its open pages or POST reads to
    it before it starts); when the platform protects reads, they are checked in front of
    everything else."""

    def __init__(self, api: FastAPI, service: str) -> None:
        self.api = api
        self.service = service
        self.fast_routes: list[FastRoute] = []
        self.reads = ReadPolicy(api.state.read_guard)
        self._asgi: FastRoutes | None = None
        original = api.openapi

        def openapi() -> dict[str, Any]:
            if api.openapi_schema is None:
                schema = declare_framework_answers(original())
                schema = _add_to_openapi(schema, self.fast_routes)
                fast = {(r.method, r.path) for r in self.fast_routes}
                api.openapi_schema = self.reads.declare(schema, fast)
            return api.openapi_schema

        api.openapi = openapi  # type: ignore[method-assign]

    @property
    def state(self) -> Any:
        """The FastAPI app's state (settings, readiness, what ``setup`` put there)."""
        return self.api.state

    def include_router(self, router: Any) -> None:
        """Add a FastAPI router (admin and other non-hot routes)."""
        self.api.include_router(router)

    def exception_handler(
        self, exc: type[Exception]
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """FastAPI's exception-handler decorator, for the FastAPI routes."""
        decorator: Callable[[Callable[..., Any]], Callable[..., Any]]
        decorator = self.api.exception_handler(exc)
        return decorator

    def add_fast_route(self, route: FastRoute) -> None:
        """Serve ``route`` ahead of FastAPI (before the app starts)."""
        self.fast_routes.append(route)
        self._asgi = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._asgi is None:
            reads = self.reads if self.reads.guard.configured else None
            self._asgi = FastRoutes(self.api, self.service, self.fast_routes, reads=reads)
        await self._asgi(scope, receive, send)


def create_app(
    settings: ServiceSettings,
    setup: ServiceSetup | None = None,
    description: str = "",
) -> Service:
    """Build a service with /healthz, /readyz, /metrics and the shared middleware.

    ``setup`` runs in the lifespan: it opens connections through ``Resources`` (each one
    a readiness check) and loads heavy artifacts; everything is closed on shutdown.
    """
    name = settings.service_name
    readiness = Readiness(name)

    read_token = settings_token(settings, "read")  # sent with this service's own calls

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = Resources(readiness, read_token)
        app.state.resources = resources
        try:
            if setup is not None:
                await setup(app, resources)
            yield
        finally:
            await resources.aclose()

    api = FastAPI(title=f"cascade {name}", description=description, version=VERSION,
                  lifespan=lifespan)  # fmt: skip
    api.state.settings = settings
    api.state.readiness = readiness
    api.state.admin_guard = AdminGuard.from_settings(settings)
    api.state.read_guard = ReadGuard.from_settings(settings)
    api.add_middleware(RequestMetricsMiddleware, service=name)
    api.add_middleware(RequestIdMiddleware)
    SERVICE_INFO.labels(name, VERSION).set(1)

    @api.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up and its event loop answers."""
        return {"status": "ok", "service": name}

    not_ready: dict[int | str, dict[str, Any]] = {
        503: {"description": "a required dependency is not ready (checks say which)"}
    }

    @api.get("/readyz", tags=["ops"], responses=not_ready)
    async def readyz() -> Response:
        """Readiness with the reason for every dependency; 503 until all required ones pass."""
        ready, details = await readiness.evaluate()
        body = {"ready": ready, "service": name, "checks": details}
        return JSONResponse(body, status_code=200 if ready else 503)

    exposition: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
    }

    @api.get("/metrics", tags=["ops"], response_class=Response, responses=exposition)
    async def metrics() -> Response:
        """Prometheus text exposition."""
        payload, content_type = render_metrics()
        return Response(payload, media_type=content_type)

    return Service(api, name)


ServiceSettingsT = TypeVar("ServiceSettingsT", bound=ServiceSettings)


def run_service(
    settings_cls: type[ServiceSettingsT], build_app: Callable[[ServiceSettingsT], Service]
) -> None:
    """Entry point of a service process: settings (exit on invalid), logging, uvicorn."""
    settings = load_settings(settings_cls)
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    try:
        app = build_app(settings)
    except StartupError as exc:
        sys.stderr.write(f"{settings.service_name}: {exc}\n")
        raise SystemExit(2) from None
    log.info("starting", extra={"host": settings.host, "port": settings.port})
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=75,  # pooled callers keep connections 30 s (http_client.IDLE_S)
        proxy_headers=False,  # no proxy in front whose client addresses we would trust
    )
