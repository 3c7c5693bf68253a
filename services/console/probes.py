"""Live probes for the health page: every service's /readyz and the shared dependencies.

Every probe has a deadline and turns any failure into a reason, so a dead dependency shows
as down and never fails the page.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.console.health import service_row
from services.console.upstream import Upstream, Upstreams
from shared.platform.http_client import UpstreamError
from shared.platform.redis_client import REDIS_ERRORS, AsyncRedis


async def service_rows(upstreams: Upstreams) -> list[dict[str, Any]]:
    """Every service's readiness, probed at once."""

    async def one(name: str, client: Upstream) -> dict[str, Any]:
        try:
            return service_row(name, client.base_url, await client.call("GET", "/readyz"))
        except UpstreamError as exc:
            return service_row(name, client.base_url, None, f"{exc.kind}: {exc.detail}")

    return list(await asyncio.gather(*(one(n, c) for n, c in upstreams.clients.items())))


def _dep(name: str, target: str, ok: bool, reason: str) -> dict[str, Any]:
    return {"name": name, "target": target, "status": "up" if ok else "down", "reason": reason}


async def redis_probe(client: AsyncRedis, url: str) -> dict[str, Any]:
    """PING the online store."""
    try:
        await client.ping()
    except REDIS_ERRORS as exc:
        return _dep("redis", url, False, f"{type(exc).__name__}: {exc}")
    return _dep("redis", url, True, "PING answered")


async def broker_probe(bootstrap: str, timeout_s: float) -> dict[str, Any]:
    """A TCP connection to a bootstrap server (the services' own checks speak Kafka)."""
    reasons = []
    for server in bootstrap.split(","):
        host, _, port = server.rpartition(":")
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return _dep("broker", bootstrap, True, f"{server} accepts connections")
        except (OSError, TimeoutError) as exc:
            reasons.append(f"{server}: {type(exc).__name__} {exc}".strip())
    return _dep("broker", bootstrap, False, "; ".join(reasons))


async def http_probe(name: str, client: Upstream, path: str) -> dict[str, Any]:
    """GET ``path`` of a dependency with an HTTP health endpoint (MLflow, Prometheus)."""
    try:
        answer = await client.call("GET", path)
    except UpstreamError as exc:
        return _dep(name, client.base_url, False, f"{exc.kind}: {exc.detail}")
    reason = f"GET {path} -> {answer.status}"
    return _dep(name, client.base_url, answer.ok, reason)
