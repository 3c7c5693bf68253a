"""Prometheus helpers: request and per-stage latency histograms shared by every service."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Buckets sized for a recommender's millisecond budgets, with a tail for stalls.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,  # 0.1-0.25 s was one bucket: a p99 in it was a guess across 150 ms
    0.2,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

REQUEST_LATENCY = Histogram(
    "cascade_http_request_duration_seconds",
    "HTTP request latency by service, route and status.",
    ["service", "route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS_IN_FLIGHT = Gauge("cascade_http_requests_in_flight", "Requests being served.", ["service"])
STAGE_LATENCY = Histogram(
    "cascade_stage_duration_seconds",
    "Latency of one pipeline stage or dependency call.",
    ["service", "stage"],
    buckets=LATENCY_BUCKETS,
)
STAGE_ERRORS = Counter(
    "cascade_stage_errors_total", "Stage failures by kind.", ["service", "stage", "kind"]
)
SERVICE_INFO = Gauge(
    "cascade_service_up", "1 while the service process runs.", ["service", "version"]
)
DEPENDENCY_UP = Gauge(
    "cascade_dependency_up",
    "1 when the last readiness check of a dependency passed.",
    ["service", "dependency"],
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@contextmanager
def stage_timer(service: str, stage: str) -> Iterator[None]:
    """Time a block into ``cascade_stage_duration_seconds``; count it as an error if it raises."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        STAGE_ERRORS.labels(service, stage, type(exc).__name__).inc()
        raise
    finally:
        STAGE_LATENCY.labels(service, stage).observe(time.perf_counter() - start)


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


class RequestMetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware) observing every HTTP request.

    The route label is the matched path template (``/v1/items/{item_id}``), never the raw path,
    so label cardinality stays bounded.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.in_flight = REQUESTS_IN_FLIGHT.labels(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        self.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUEST_LATENCY.labels(
                self.service, template, scope.get("method", ""), str(status["code"])
            ).observe(time.perf_counter() - start)
