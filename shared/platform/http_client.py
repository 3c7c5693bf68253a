"""Service-to-service HTTP/1.1 client: pooled keep-alive connections, deadlines, clear errors.

Why not aiohttp or httpx: the gateway makes four stage calls per request, and on two shared
cores the client's own CPU is a real share of the bill. Measured here for a 12 kB POST with a
4 kB answer (``python -m loadtests.bench_transport``): aiohttp 235 µs of client CPU per call,
httpx about 1 ms, this client (an ``asyncio.Protocol`` with uvicorn's C parser, httptools)
60 µs. It speaks only what our services answer: HTTP/1.1 with keep-alive, ``Content-Length``
or chunked bodies. Anything else (redirects, TLS, proxies) is not needed between our own
services and not supported.

A call that misses its deadline is not cancelled on the wire: the server does the work
anyway, and dropping the connection would make the next call pay for a new one (under
overload that churn is a measurable share of the gateway's CPU). Its answer is read and
dropped in the background for at most ``linger_s``; the connection then goes back to the pool.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

JSON = "application/json"
IDLE_S = 30.0  # an idle connection older than this is closed (servers keep them 75 s)


class UpstreamError(Exception):
    """A call to another service failed; ``kind`` is timeout, unreachable, status or decode."""

    def __init__(self, service: str, kind: str, detail: str, status: int = 0) -> None:
        super().__init__(f"{service}: {kind}: {detail}")
        self.service = service
        self.kind = kind
        self.detail = detail
        self.status = status


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed by httptools."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, str, bytes]] | None = None
        self.closed = False
        self.used = 0  # requests sent on this connection
        self.idle_since = time.monotonic()
        self._chunks: list[bytes] = []
        self._ctype = ""
        self._header = b""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(OSError(f"bad HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError(f"connection closed: {exc or 'by the server'}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self._ctype = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.close()
        answer, body = self.answer, b"".join(self._chunks)
        self._chunks, self._ctype, ctype = [], "", self._ctype
        if answer is not None and not answer.done():
            answer.set_result((status, ctype, body))

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def send(self, head: bytes, body: bytes | None) -> asyncio.Future[tuple[int, str, bytes]]:
        """Write one request; the future resolves to (status, content type, body)."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.used += 1
        self.transport.writelines([head, body] if body else [head])
        return self.answer

    def close(self) -> None:
        """Close the socket (a pooled connection is then dropped, never reused)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ServiceClient:
    """A client for one downstream service, reusing its connections across requests.

    Every call has a deadline (seconds): the constructor's default, or a tighter one from the
    caller (the gateway passes what is left of the request's budget). With ``token`` every
    call carries ``Authorization: Bearer <token>`` (the platform's read token, where reads
    are protected) unless the call passes its own.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        timeout_s: float = 1.0,
        max_connections: int = 100,
        linger_s: float = 5.0,
        token: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{name}: {base_url!r} is not an http://host:port URL")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.linger_s = linger_s
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._auth_header = f"Authorization: Bearer {token}\r\n".encode() if token else b""
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = JSON,
        timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[str, bytes]:
        """Send a request; (content type, body) of a 2xx answer, else UpstreamError.

        ``timeout_s`` 0 means the caller bounds the call itself (the gateway's runner does,
        with each step's deadline): no second timer per call.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        head = self._head(method, path, body, content_type, headers)
        try:
            async with asyncio.timeout(timeout or None):
                status, ctype, answer = await self._exchange(head, body)
        except TimeoutError:
            raise UpstreamError(
                self.name, "timeout", f"{method} {path} after {timeout * 1000:.0f} ms"
            ) from None
        except OSError as exc:
            raise UpstreamError(self.name, "unreachable", f"{method} {path}: {exc}") from None
        if status >= 400:
            text = answer[:300].decode("utf-8", "replace")
            raise UpstreamError(self.name, "status", f"{method} {path} -> {status}: {text}", status)
        return ctype, answer

    def _head(
        self, method: str, path: str, body: bytes | None, ctype: str, extra: dict[str, str] | None
    ) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode(), self._host_header]
        if body is not None:
            lines.append(f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n".encode())
        if self._auth_header and not (extra and "Authorization" in extra):
            lines.append(self._auth_header)
        for key, value in (extra or {}).items():
            lines.append(f"{key}: {value}\r\n".encode("latin-1"))
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _exchange(self, head: bytes, body: bytes | None) -> tuple[int, str, bytes]:
        conn, reused = await self._acquire()
        try:
            return await self._on(conn, head, body)
        except ConnectionResetError:
            if not reused:
                raise
            # The server closed an idle connection as we wrote: once more, on a fresh one
            # (stage calls have no side effects, so a repeat is harmless).
            return await self._on(await self._connect(), head, body)

    async def _on(
        self, conn: _Connection, head: bytes, body: bytes | None
    ) -> tuple[int, str, bytes]:
        answer = conn.send(head, body)
        try:
            result = await asyncio.shield(answer)
        except asyncio.CancelledError:  # our deadline: the answer is read in the background
            self._linger(conn, answer)
            raise
        except BaseException:
            self._discard(conn)
            raise
        self._release(conn)
        return result

    async def _acquire(self) -> tuple[_Connection, bool]:
        """An idle pooled connection (reused True), a new one, or, at ``max_connections``,
        the first one another call releases."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn, True
            self._discard(conn)
        if self._open < self.max_connections:
            return await self._connect(), False
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            handed = await waiter  # a released connection, or None: room for a new one
        except asyncio.CancelledError:  # handed over just as our deadline came: pass it on
            if waiter.done() and not waiter.cancelled():
                got = waiter.result()
                if got is not None:
                    self._release(got)
                else:
                    self._wake(None)
            raise
        return (handed, True) if handed is not None else (await self._connect(), False)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self._open += 1
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except BaseException:
            self._open -= 1
            self._wake(None)
            raise
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.closed:
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        if not self._wake(conn):
            self._idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open -= 1
        self._wake(None)

    def _wake(self, conn: _Connection | None) -> bool:
        """Hand ``conn`` (or room for a new connection) to the first waiting call, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a waiter whose call was cancelled is skipped
                waiter.set_result(conn)
                return True
        return False

    def _linger(self, conn: _Connection, answer: asyncio.Future[Any]) -> None:
        """Read a late answer in the background; keep the connection if it comes in time."""
        late = asyncio.get_running_loop().call_later(self.linger_s, conn.close)

        def done(fut: asyncio.Future[Any]) -> None:
            late.cancel()
            if not fut.cancelled():
                fut.exception()  # retrieved: asyncio does not report it as never retrieved
            self._release(conn)

        answer.add_done_callback(done)

    async def get_json(self, path: str, timeout_s: float | None = None) -> Any:
        """GET ``path`` and decode its JSON answer."""
        _, body = await self.request("GET", path, timeout_s=timeout_s)
        return self._json(path, body)

    async def post_json(self, path: str, payload: Any, timeout_s: float | None = None) -> Any:
        """POST ``payload`` as JSON and decode the JSON answer."""
        _, body = await self.request("POST", path, orjson.dumps(payload), timeout_s=timeout_s)
        return self._json(path, body)

    def _json(self, path: str, body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(self.name, "decode", f"{path}: {exc}") from exc

    async def aclose(self) -> None:
        """Close pooled connections."""
        while self._idle:
            self._discard(self._idle.pop())
