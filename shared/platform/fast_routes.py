"""Hot routes answered straight from ASGI, in front of the FastAPI app that serves the rest.

FastAPI costs about 160 µs of CPU per request over bare ASGI under uvicorn here (routing,
the middleware stack, dependency solving, the Request object: ``python -m
loadtests.bench_transport``), for a stage call whose own work is often a few hundred µs. So
the request path's routes (``POST /v1/<stage>``, ``GET /v1/recommendations``) are plain
handlers: bytes in, bytes out, with the shell's duties done inline (request id, latency
metric, body limit, a 500 that is logged and never leaks). Everything else (health,
readiness, metrics, admin routes) stays on FastAPI, and the fast routes are written into its
OpenAPI document, so ``/openapi.json`` still describes every route the service answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from shared.platform.contracts import VALIDATION_ERROR
from shared.platform.logging import new_request_id, request_id_var
from shared.platform.metrics import REQUEST_LATENCY, REQUESTS_IN_FLIGHT

if TYPE_CHECKING:
    from shared.platform.auth import ReadPolicy

log = logging.getLogger(__name__)

JSON = "application/json"
MSGPACK = "application/x-msgpack"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class FastRequest:
    """What a fast handler sees of a request."""

    method: str
    path: str
    query_string: bytes
    headers: dict[bytes, bytes]  # lower-case names; a repeated header keeps its last value
    body: bytes
    request_id: str

    @property
    def content_type(self) -> str:
        """The media type, without parameters."""
        return self.headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1")

    def query(self) -> dict[str, str]:
        """Query parameters (a repeated parameter keeps its last value)."""
        return dict(parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True))


@dataclass
class FastResponse:
    """A handler's answer."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class RequestError(Exception):
    """An answer other than 200 that the handler chose (422 bad input, 503 not ready, ...)."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def invalid(loc: tuple[str | int, ...], msg: str, kind: str = "value_error") -> RequestError:
    """A 422 in FastAPI's shape: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""
    return RequestError(422, [{"loc": list(loc), "msg": msg, "type": kind}])


Handler = Callable[[FastRequest], Awaitable[FastResponse]]


@dataclass(frozen=True)
class FastRoute:
    """One hot route: its handler and the OpenAPI operation that documents it."""

    method: str
    path: str
    handler: Handler
    operation: dict[str, Any] = field(default_factory=dict)  # OpenAPI operation object
    schemas: dict[str, Any] = field(default_factory=dict)  # components.schemas it refers to


class FastRoutes:
    """ASGI app: the fast routes by (method, path); any other request goes to ``app``.

    With ``reads`` (the platform protects its reads) every read is checked here, before its
    body is read or anything else runs: the fast routes, and what ``reads.covers``."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        routes: list[FastRoute],
        max_body: int = 8 << 20,
        reads: ReadPolicy | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.max_body = max_body
        self.reads = reads
        self.routes = {(r.method, r.path): r for r in routes}
        self.methods: dict[str, list[str]] = {}  # path -> its methods (for 405's Allow)
        for r in routes:
            self.methods.setdefault(r.path, []).append(r.method)
        self.in_flight = REQUESTS_IN_FLIGHT.labels(service)
        self._latency: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        route = self.routes.get((scope.get("method", ""), path))
        if route is None or scope["type"] != "http":
            if scope["type"] == "http" and path in self.methods:  # a fast path, another method
                allow = ", ".join(self.methods[path]).encode()
                resp = _error(405, "method not allowed")
                resp.headers = [(b"allow", allow)]
                await _send(send, resp, new_request_id())
                return
            if self.reads is not None and scope["type"] == "http":
                auth = _header(scope, b"authorization")
                refused = self._refusal(scope.get("method", ""), path, auth)
                if refused is not None:
                    await _send(send, refused, new_request_id())
                    return
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        self.in_flight.inc()
        status = 500
        try:
            status = await self._serve(route, scope, receive, send)
        finally:
            self.in_flight.dec()
            self._observe(route, status, time.perf_counter() - start)

    async def _serve(self, route: FastRoute, scope: Scope, receive: Receive, send: Send) -> int:
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or new_request_id()
        token = request_id_var.set(rid)
        try:
            resp = None
            if self.reads is not None:  # before the body is read
                resp = self._refusal(None, route.path, headers.get(b"authorization"))
            if resp is None:
                resp = await self._read_and_handle(route, scope, receive, headers, rid)
            await _send(send, resp, rid)
            return resp.status
        finally:
            request_id_var.reset(token)

    async def _read_and_handle(
        self, route: FastRoute, scope: Scope, receive: Receive, headers: dict[bytes, bytes],
        rid: str,
    ) -> FastResponse:  # fmt: skip
        body = await self._body(receive, headers.get(b"content-length"))
        if body is None:
            return _error(413, f"body larger than {self.max_body} bytes")
        req = FastRequest(
            scope["method"], scope["path"], scope.get("query_string", b""), headers, body, rid
        )
        return await self._handle(route, req)

    def _refusal(self, method: str | None, path: str, auth: bytes | None) -> FastResponse | None:
        """The 401/403 of a read without the token (``method`` None: a fast route, always a
        read), else None."""
        assert self.reads is not None
        if method is not None and not self.reads.covers(method, path):
            return None
        refused = self.reads.guard.refusal(auth.decode("latin-1") if auth else None)
        if refused is None:
            return None
        resp = _error(*refused)
        if refused[0] == 401:
            resp.headers = [(b"www-authenticate", b"Bearer")]
        return resp

    async def _handle(self, route: FastRoute, req: FastRequest) -> FastResponse:
        try:
            return await route.handler(req)
        except RequestError as exc:
            resp = _error(exc.status, exc.detail)
            resp.headers = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
            return resp
        except Exception:  # a bug must answer 500 with a reason logged, never hang or crash
            log.exception("fast route failed", extra={"route": route.path})
            return _error(500, "internal error")

    async def _body(self, receive: Receive, declared: bytes | None) -> bytes | None:
        """The body, read chunk by chunk; None as soon as it passes ``max_body`` (a declared
        Content-Length over the limit is refused before anything is read)."""
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _observe(self, route: FastRoute, status: int, seconds: float) -> None:
        key = (route.path, route.method, status)
        child = self._latency.get(key)
        if child is None:  # label lookups cost more than the observation: resolve once
            child = self._latency[key] = REQUEST_LATENCY.labels(
                self.service, route.path, route.method, str(status)
            )
        child.observe(seconds)


def _header(scope: Scope, name: bytes) -> bytes | None:
    """A request header of an ASGI scope (names are lower-case there), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _error(status: int, detail: Any) -> FastResponse:
    return FastResponse(status, orjson.dumps({"detail": detail}))


async def _send(send: Send, resp: FastResponse, rid: str) -> None:
    headers = [
        (b"content-type", resp.content_type.encode()),
        (b"content-length", str(len(resp.body)).encode()),
        (b"x-request-id", rid.encode()),
        *resp.headers,
    ]
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": resp.body})


def add_to_openapi(schema: dict[str, Any], routes: list[FastRoute]) -> dict[str, Any]:
    """``schema`` (FastAPI's OpenAPI document) with the fast routes written into it, each
    with the answers the shell itself gives (:func:`declared_operation`)."""
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    for r in routes:
        schema.setdefault("paths", {}).setdefault(r.path, {})[r.method.lower()] = (
            declared_operation(r.operation)
        )
        comps.update(r.schemas)
    if routes:
        comps.update(ERROR_SCHEMAS)
    return schema


_DETAIL = {"$ref": "#/components/schemas/FastError"}
ERROR_SCHEMAS: dict[str, Any] = {
    "FastError": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {}},
        "description": "an answer other than 200: ``detail`` says why",
    },
    "FastValidationError": {
        **VALIDATION_ERROR,
        "description": "422: each entry names the bad field (``loc``) and why",
    },
}


def _answer(description: str, ref: str = "FastError", **extra: Any) -> dict[str, Any]:
    content = {JSON: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
    return {"description": description, "content": content, **extra}


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}


def declared_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """``operation`` with every answer the fast-route shell can give declared, once for all
    fast routes: 422 (a handler's bad input), 503 (not ready, Retry-After), and for routes
    with a body 413 (over the limit) and 415 (another media type); a 200 is answered in the
    media type of the request (MessagePack or JSON) when the body accepts both."""
    op = {**operation, "responses": dict(operation.get("responses", {}))}
    responses = op["responses"]
    defaults = {
        "422": _answer("a parameter or field is invalid (loc names it)", "FastValidationError"),
        "503": _answer(
            "not ready (starting, or the model is loading); retry", headers=_RETRY_AFTER
        ),
    }
    body = op.get("requestBody", {}).get("content", {})
    if body:
        defaults["413"] = _answer("the body is larger than the service's limit")
        defaults["415"] = _answer(f"a media type other than {', '.join(body)}")
    for status, answer in defaults.items():
        declared = responses.get(status)
        responses[status] = {**answer, **(declared or {}), "content": answer["content"]}
    ok = responses.get("200")
    if ok is not None and MSGPACK in body and JSON in ok.get("content", {}):
        binary = {"schema": {"type": "string", "format": "binary"}}
        responses["200"] = {**ok, "content": {**ok["content"], MSGPACK: binary}}
    return op
