"""Async HTTP client for service-to-service calls: pooled connections, timeouts, clear errors."""

from __future__ import annotations

from typing import Any

import httpx
import orjson


class UpstreamError(Exception):
    """A call to another service failed; ``kind`` is timeout, unreachable, status or decode."""

    def __init__(self, service: str, kind: str, detail: str) -> None:
        super().__init__(f"{service}: {kind}: {detail}")
        self.service = service
        self.kind = kind
        self.detail = detail


class ServiceClient:
    """A client for one downstream service, reusing its connections across requests.

    Every call has a deadline (seconds); the default comes from the constructor and a caller
    may pass a tighter one (the gateway passes what is left of the request's budget).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        timeout_s: float = 1.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send a request and decode the JSON answer; raise UpstreamError on any failure."""
        content = orjson.dumps(json_body) if json_body is not None else None
        hdrs = {"content-type": "application/json"} if content is not None else {}
        if headers:
            hdrs.update(headers)
        timeout = httpx.Timeout(timeout_s if timeout_s is not None else self.timeout_s)
        try:
            resp = await self._client.request(
                method, path, content=content, params=params, headers=hdrs, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise UpstreamError(self.name, "timeout", f"{method} {path} after {timeout}") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(self.name, "unreachable", f"{method} {path}: {exc!r}") from exc
        if resp.status_code >= 400:
            raise UpstreamError(
                self.name, "status", f"{method} {path} -> {resp.status_code}: {resp.text[:300]}"
            )
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(self.name, "decode", f"{method} {path}: {exc}") from exc

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET ``path`` and decode JSON."""
        return await self.request_json("GET", path, **kwargs)

    async def post_json(self, path: str, body: Any, **kwargs: Any) -> Any:
        """POST a JSON body to ``path`` and decode the JSON answer."""
        return await self.request_json("POST", path, json_body=body, **kwargs)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()
