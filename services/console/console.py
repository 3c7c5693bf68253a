"""The console's backend: what each page's JSON is made of, fetched from the services.

Reads never fail because a service is down: its part says so. Writes go to the service that
owns them (the events API, the rollouts service) with the caller's ``Authorization`` header
passed on unchanged: the console holds no admin token. Where the platform protects its reads
the console's own reads carry its read token (``CASCADE_READ_TOKEN[_FILE]``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from services.console import health, probes
from services.console.latency import latency_report
from services.console.monitors import monitors_view
from services.console.prometheus import prometheus_window
from services.console.scrapes import Scrape, ScrapeRing, kept
from services.console.settings import Settings
from services.console.upstream import Answer, Upstream, Upstreams, upstream_error
from shared.pipeline.budget import LatencyBudget, load_budget
from shared.platform.auth import bearer, settings_token
from shared.platform.http_client import UpstreamError
from shared.platform.redis_client import create_async_redis

log = logging.getLogger(__name__)
HEALTH_WINDOW_S = 300.0


class Console:
    """Clients of every service, the scrape ring and the latency budget."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.read_auth = bearer(settings_token(settings, "read"))  # {} where reads are open
        self.upstreams = Upstreams(settings.services(), settings.timeout_s)
        self.ring = ScrapeRing(settings.window_s)
        self.budget: LatencyBudget = load_budget(settings.latency_budget)
        self.variants, self.variants_note = health.read_variants(settings.variants)
        self.mlflow = Upstream("mlflow", settings.mlflow_uri, timeout_s=settings.timeout_s)
        self.prometheus = (
            Upstream("prometheus", settings.prometheus_url, timeout_s=settings.timeout_s)
            if settings.prometheus_url
            else None
        )
        self.redis = create_async_redis(
            settings.redis_url, settings.timeout_s, cluster=settings.redis_cluster
        )

    async def aclose(self) -> None:
        """Close every connection."""
        await self.upstreams.aclose()
        await self.mlflow.aclose()
        if self.prometheus is not None:
            await self.prometheus.aclose()
        await self.redis.aclose()

    # ---- passing calls on ---------------------------------------------------------------
    async def forward(
        self,
        service: str,
        method: str,
        path: str,
        payload: Any = None,
        authorization: str | None = None,
    ) -> Answer:
        """One call to ``service``; UpstreamError when it does not answer (or is unknown).

        A write carries the caller's ``authorization`` only; a read the caller's, else the
        console's read token."""
        try:
            client = self.upstreams.get(service)
        except KeyError:
            raise UpstreamError(
                service, "unconfigured", "not in CASCADE_CONSOLE_SERVICE_URLS"
            ) from None
        if authorization:
            headers = {"Authorization": authorization}
        else:
            headers = self.read_auth if method == "GET" else {}
        return await client.call(method, path, payload, headers=headers or None)

    async def read(self, service: str, path: str) -> dict[str, Any]:
        """A read for a page: the JSON answer, or ``{"error": ...}`` saying why there is none."""
        try:
            answer = await self.forward(service, "GET", path)
        except UpstreamError as exc:
            return {"error": upstream_error(exc)}
        if not answer.ok or not isinstance(answer.data, dict):
            detail = answer.data.get("detail") if isinstance(answer.data, dict) else None
            return {
                "error": {
                    "service": service,
                    "kind": "status",
                    "detail": f"GET {path} -> {answer.status}: {detail or ''}",
                }
            }
        return answer.data

    # ---- scrapes ------------------------------------------------------------------------
    async def scrape_once(self) -> Scrape:
        """Every service's /metrics now, into the ring."""
        names = list(self.upstreams.clients)
        got = await asyncio.gather(*(self._metrics(n) for n in names), return_exceptions=True)
        series, errors = {}, {}
        for name, result in zip(names, got, strict=True):
            if isinstance(result, BaseException):
                errors[name] = f"{type(result).__name__}: {result}"
            else:
                series[name] = result
        scrape = Scrape(time.time(), series, errors)
        self.ring.add(scrape)
        return scrape

    async def _metrics(self, name: str) -> Any:
        answer = await self.upstreams.get(name).call("GET", "/metrics")
        if not answer.ok:
            raise ValueError(f"/metrics answered {answer.status}")
        return await asyncio.to_thread(kept, answer.body.decode("utf-8", "replace"))

    async def scrape_forever(self) -> None:
        """Scrape every ``scrape_s`` until cancelled; a failed round is logged, not fatal."""
        while True:
            try:
                await self.scrape_once()
            except Exception:  # the loop must outlive any one bad round
                log.exception("scrape failed")
            await asyncio.sleep(self.settings.scrape_s)

    # ---- pages --------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """Services, dependencies, consumers, freshness, models and variants."""
        timeout = self.settings.timeout_s
        deps = [
            probes.redis_probe(self.redis, self.settings.redis_url),
            probes.broker_probe(self.settings.kafka_bootstrap, timeout),
            probes.http_probe("mlflow", self.mlflow, "/health"),
        ]
        if self.prometheus is not None:
            deps.append(probes.http_probe("prometheus", self.prometheus, "/-/ready"))
        services, *dependencies = await asyncio.gather(probes.service_rows(self.upstreams), *deps)
        latest = self.ring.latest()
        window = self.ring.window(HEALTH_WINDOW_S)
        series = latest.series if latest is not None else {}
        held = health.models_held(series)
        return {
            "ts": time.time(),
            "services": services,
            "dependencies": dependencies,
            "consumers": health.consumers(series),
            "freshness": {
                **health.freshness(window.series if window is not None else {}),
                "window_s": round(window.span_s, 1) if window is not None else 0.0,
            },
            "models": held,
            "variants": health.variants_held(self.variants, held),
            "variants_note": self.variants_note,
            "scrape": {
                "age_s": round(time.time() - latest.ts, 1) if latest is not None else None,
                "errors": dict(latest.errors) if latest is not None else {},
            },
        }

    async def latency(self, window_s: float) -> dict[str, Any]:
        """Per-step p50/p99 over the last ``window_s`` against the budget."""
        if self.prometheus is not None:
            try:
                window = await prometheus_window(self.prometheus, window_s)
                return latency_report(window, self.budget, f"prometheus {self.prometheus.base_url}")
            except UpstreamError as exc:
                report = latency_report(self.ring.window(window_s), self.budget, "console scrapes")
                return {**report, "note": f"Prometheus unavailable ({exc.kind}): own scrapes"}
        return latency_report(self.ring.window(window_s), self.budget, "console scrapes")

    async def monitors(self, service: str) -> dict[str, Any]:
        """Drift per variant and the last skew report, from ``service``'s ``/v1/monitors``."""
        return monitors_view(service, await self.read(service, "/v1/monitors"))
