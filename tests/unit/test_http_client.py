"""ServiceClient against real servers: deadlines fire, failures are classified, connections are
reused, a connection the server closed is retried once, a late answer does not cost the
connection, chunked answers are read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import orjson
import pytest
import uvicorn

from deploy.local.processes import free_port
from shared.platform.http_client import ServiceClient, UpstreamError


async def _app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """/echo answers the body, /status/N answers N, /slow waits 0.3 s, /chunked streams."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path, status, headers = scope["path"], 200, [(b"content-type", b"application/json")]
    if path.startswith("/status/"):
        status, body = int(path.rsplit("/", 1)[1]), b"down"
    elif path == "/slow":
        await asyncio.sleep(0.3)
        body = b'{"late": true}'
    elif path == "/badjson":
        body = b"{not json"
    elif path == "/peer":
        client = scope.get("client") or ("", 0)
        body = orjson.dumps({"port": client[1]})
    if path == "/chunked":  # no content-length: uvicorn sends chunked transfer encoding
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for part in (b'{"a": ', b"[1, 2", b"]}"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A real uvicorn server on a free port (keep-alive 1 s, so idle connections get closed)."""
    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, log_level="error",
                            timeout_keep_alive=1, lifespan="on")  # fmt: skip
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    await task


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)
        writer.close()

    srv = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.close()


async def test_timeout_is_reported_as_timeout(silent_server: str) -> None:
    client = ServiceClient("slow", silent_server, timeout_s=0.2)
    start = time.perf_counter()
    with pytest.raises(UpstreamError) as exc:
        await client.get_json("/x")
    elapsed = time.perf_counter() - start
    await client.aclose()
    assert exc.value.kind == "timeout" and exc.value.service == "slow"
    assert elapsed < 2.0  # bounded by the timeout, not by the server's 30 s


async def test_per_call_timeout_overrides_default(silent_server: str) -> None:
    client = ServiceClient("slow", silent_server, timeout_s=10.0)
    start = time.perf_counter()
    with pytest.raises(UpstreamError):
        await client.get_json("/x", timeout_s=0.1)
    await client.aclose()
    assert time.perf_counter() - start < 2.0


async def test_connection_refused_is_unreachable() -> None:
    client = ServiceClient("gone", f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    with pytest.raises(UpstreamError) as exc:
        await client.get_json("/x")
    await client.aclose()
    assert exc.value.kind == "unreachable"


async def test_error_status_and_bad_json_are_classified(server: str) -> None:
    client = ServiceClient("svc", server)
    with pytest.raises(UpstreamError) as exc:
        await client.get_json("/status/503")
    assert exc.value.kind == "status" and exc.value.status == 503 and "down" in exc.value.detail
    with pytest.raises(UpstreamError) as exc:
        await client.get_json("/badjson")
    assert exc.value.kind == "decode"
    await client.aclose()


async def test_json_round_trip_and_chunked_answers(server: str) -> None:
    client = ServiceClient("echo", server)
    assert await client.post_json("/echo", {"a": [1, 2]}) == {"a": [1, 2]}
    assert await client.get_json("/chunked") == {"a": [1, 2]}
    ctype, body = await client.request("POST", "/echo", b"\x00\x01", "application/x-msgpack")
    assert body == b"\x00\x01" and ctype == "application/json"
    await client.aclose()


async def test_sequential_calls_reuse_one_connection(server: str) -> None:
    client = ServiceClient("svc", server)
    ports = {(await client.get_json("/peer"))["port"] for _ in range(20)}
    await client.aclose()
    assert len(ports) == 1


async def test_concurrent_calls_open_one_connection_each(server: str) -> None:
    client = ServiceClient("svc", server)
    answers = await asyncio.gather(*(client.get_json("/peer") for _ in range(5)))
    again = await asyncio.gather(*(client.get_json("/peer") for _ in range(5)))
    await client.aclose()
    first = {a["port"] for a in answers}
    assert len(first) == 5 and {a["port"] for a in again} == first  # pooled and reused


async def test_a_connection_the_server_closed_is_retried_on_a_new_one(server: str) -> None:
    client = ServiceClient("svc", server)
    before = (await client.get_json("/peer"))["port"]
    await asyncio.sleep(1.6)  # the server's keep-alive (1 s) closes the idle connection
    after = (await client.get_json("/peer"))["port"]  # no error: retried on a fresh one
    await client.aclose()
    assert after != before


async def test_a_late_answer_is_read_and_the_connection_kept(server: str) -> None:
    client = ServiceClient("svc", server, linger_s=5.0)
    with pytest.raises(UpstreamError) as exc:
        await client.get_json("/slow", timeout_s=0.05)
    assert exc.value.kind == "timeout"
    await asyncio.sleep(0.4)  # the late answer arrives and is dropped in the background
    ports = {(await client.get_json("/peer"))["port"] for _ in range(3)}
    await client.aclose()
    assert len(ports) == 1  # the same connection served on (not closed by the timeout)


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="not an http://host:port URL"):
        ServiceClient("svc", "ftp://x")


async def test_calls_beyond_the_pool_wait_for_a_released_connection(server: str) -> None:
    client = ServiceClient("svc", server, max_connections=2)
    answers = await asyncio.gather(*(client.get_json("/peer") for _ in range(12)))
    await client.aclose()
    assert len(answers) == 12 and len({a["port"] for a in answers}) <= 2
