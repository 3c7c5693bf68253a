"""ServiceClient: timeouts fire on time, failures are classified, JSON round-trips."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from deploy.local.processes import free_port
from shared.http_client import ServiceClient, UpstreamError


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()


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


def _transport(status: int, body: bytes) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(status, content=request.content)
        return httpx.Response(status, content=body)

    return httpx.MockTransport(handler)


async def test_error_status_and_bad_json_are_classified() -> None:
    client = ServiceClient("svc", "http://svc", transport=_transport(503, b"down"))
    with pytest.raises(UpstreamError) as exc:
        await client.get_json("/x")
    assert exc.value.kind == "status" and "503" in exc.value.detail
    client = ServiceClient("svc", "http://svc", transport=_transport(200, b"{not json"))
    with pytest.raises(UpstreamError) as exc:
        await client.get_json("/x")
    assert exc.value.kind == "decode"


async def test_json_round_trip() -> None:
    client = ServiceClient("echo", "http://echo", transport=_transport(200, b""))
    assert await client.post_json("/echo", {"a": [1, 2]}) == {"a": [1, 2]}
