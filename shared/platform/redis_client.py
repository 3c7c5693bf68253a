"""Redis connection helpers (async for services, sync for workers) with bounded timeouts."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis


def create_async_redis(
    url: str, timeout_s: float = 0.5, max_connections: int = 64
) -> aioredis.Redis:
    """An asyncio Redis client; bytes in and out (callers choose their encodings)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        max_connections=max_connections,
        health_check_interval=30,
        decode_responses=False,
    )


def create_redis(url: str, timeout_s: float = 2.0) -> redis.Redis:
    """A blocking Redis client for workers and jobs."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )


async def redis_ready(client: aioredis.Redis) -> tuple[bool, str]:
    """Readiness probe: (True, 'ok') or (False, the reason)."""
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        return False, f"redis unreachable: {exc}"
    return True, "ok"
