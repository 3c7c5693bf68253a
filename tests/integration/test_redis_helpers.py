"""The shared Redis helpers against a real server."""

from __future__ import annotations

import pytest

from deploy.local.processes import free_port
from shared.platform.redis_client import create_async_redis, create_redis, redis_ready

pytestmark = pytest.mark.integration


async def test_async_round_trip_and_readiness(redis_url: str) -> None:
    client = create_async_redis(redis_url)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset("cas:test:h", mapping={"a": b"1", "b": b"2"})
        pipe.hgetall("cas:test:h")
        _, values = await pipe.execute()
    assert values == {b"a": b"1", b"b": b"2"}
    assert await redis_ready(client) == (True, "ok")
    await client.aclose()


def test_sync_round_trip(redis_url: str) -> None:
    client = create_redis(redis_url)
    client.set("cas:test:k", b"v")
    assert client.get("cas:test:k") == b"v"
    client.close()


async def test_unreachable_redis_gives_reason() -> None:
    client = create_async_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    ok, reason = await redis_ready(client)
    await client.aclose()
    assert not ok and "redis unreachable" in reason
