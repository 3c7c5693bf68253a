"""Calls from the console to the other services: any answer is data, only silence is an error.

The platform's ``ServiceClient`` raises on a 4xx or 5xx; the console must show those answers
(a 503 readiness body names the failing check, a 401 says a token is needed), so it keeps the
pooled client and returns the status with the body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from shared.platform.http_client import JSON, ServiceClient, UpstreamError


@dataclass(frozen=True)
class Answer:
    """A service's answer: status, decoded JSON (or None), raw body, round trip in ms."""

    status: int
    data: Any
    body: bytes
    ms: float

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


class Upstream(ServiceClient):
    """A pooled client of one service whose calls return every answer (``Answer``)."""

    async def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Answer:
        """Send one request; UpstreamError (timeout or unreachable) only when nothing answered."""
        body = None if payload is None else orjson.dumps(payload)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        head = self._head(method, path, body, JSON, headers)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout):
                status, _, raw = await self._exchange(head, body)
        except TimeoutError:
            detail = f"{method} {path}: no answer after {timeout * 1000:.0f} ms"
            raise UpstreamError(self.name, "timeout", detail) from None
        except OSError as exc:
            raise UpstreamError(self.name, "unreachable", f"{method} {path}: {exc}") from None
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            data = None
        return Answer(status, data, raw, round((loop.time() - started) * 1000.0, 3))


class Upstreams:
    """One ``Upstream`` per service the console knows, by name."""

    def __init__(self, urls: dict[str, str], timeout_s: float) -> None:
        self.urls = dict(urls)
        self.clients = {n: Upstream(n, u, timeout_s=timeout_s) for n, u in urls.items()}

    def get(self, name: str) -> Upstream:
        """The client of ``name``; KeyError when the console was not told where it runs."""
        return self.clients[name]

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client in self.clients.values():
            await client.aclose()


def upstream_error(exc: UpstreamError) -> dict[str, str]:
    """How an unanswered call shows in the console's API: which service, what happened."""
    return {"service": exc.service, "kind": exc.kind, "detail": exc.detail}
