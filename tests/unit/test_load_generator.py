"""The open-loop generator against a real local HTTP server: schedule, queueing, outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from deploy.local.processes import free_port
from loadtests.load_generator import open_loop, sequential

SERIAL = web.AppKey("serial", asyncio.Lock)


async def _recommend(request: web.Request) -> web.Response:
    """200s; user 'd' is degraded (two reasons), user 'x' gets a 503, user 's' is served
    one at a time in 50 ms (a server that queues)."""
    user = request.query["user_id"]
    if user == "x":
        return web.Response(status=503, text="unavailable")
    if user == "s":
        async with request.app[SERIAL]:
            await asyncio.sleep(0.05)
    degraded = user == "d"
    reasons = ["ranking: timeout after 12 ms; fallback: x", "reranking: y"] if degraded else []
    body = {"items": [], "degraded": degraded, "degraded_reasons": reasons}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app[SERIAL] = asyncio.Lock()
    app.router.add_get("/v1/recommendations", _recommend)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _paths(*users: str) -> list[str]:
    return [f"/v1/recommendations?user_id={u}&k=20" for u in users]


async def test_counts_answers_errors_and_degraded_reasons(server: str) -> None:
    res = await open_loop(server, _paths("1", "d", "x", "2"), rate=80.0, duration_s=0.5)
    assert res.n == 40 and res.latencies_ms.size == 40  # a 503 is answered: it has a latency
    assert res.errors == 10 and res.error_samples[0].startswith("503: b'unavailable'")
    assert res.degraded == 10
    assert res.degraded_reasons["ranking: timeout after 12 ms; fallback: x"] == 10
    assert res.send_lag_ms.size == 40 and res.wall_s > 0 and res.cpu_s >= 0


async def test_latency_runs_from_the_scheduled_time_so_queueing_counts(server: str) -> None:
    """20 requests due within 0.5 s on a server doing one per 50 ms: the last cannot finish
    before 1 s after the first was due, 0.5 s after its own due time. A closed-loop client
    would have reported about 50 ms for each."""
    res = await open_loop(server, _paths("s"), rate=40.0, duration_s=0.5)
    assert res.errors == 0
    assert res.latencies_ms.max() >= 500.0


async def test_connection_refused_is_an_error_without_latency() -> None:
    res = await open_loop(f"http://127.0.0.1:{free_port()}", _paths("1"), 20.0, 0.25)
    assert res.errors == res.n == 5 and res.latencies_ms.size == 0
    assert "Connect" in res.error_samples[0]


async def test_sequential_sends_one_at_a_time(server: str) -> None:
    res = await sequential(server, _paths("s", "s", "s"))
    assert res.n == 3 and res.errors == 0
    assert res.latencies_ms.max() < 500.0  # nothing queued behind another request
