"""Redis connection helpers (async for services, sync for workers) with bounded timeouts.

``cluster=True`` (the ``CASCADE_REDIS_CLUSTER`` setting) gives redis-py's Redis Cluster
clients instead: the URL names any node (``redis://host:port``, database 0), the client learns
the others and follows slot moves. The online store's key layout keeps every script call and
multi-key read inside one slot (``shared.online_store.keys``), so the same code runs on both.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

SyncRedis = redis.Redis | RedisCluster
AsyncRedis = aioredis.Redis | AsyncRedisCluster
# A cluster client that cannot reach any node raises RedisClusterException, not a RedisError.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException, OSError)


def cluster_from_env() -> bool:
    """``CASCADE_REDIS_CLUSTER`` for the command-line jobs (services read it as a setting)."""
    import os

    return os.environ.get("CASCADE_REDIS_CLUSTER", "").strip().lower() in {"1", "true", "yes"}


def create_async_redis(
    url: str, timeout_s: float = 0.5, max_connections: int = 64, cluster: bool = False
) -> AsyncRedis:
    """An asyncio Redis client; bytes in and out (callers choose their encodings)."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "max_connections": max_connections,  # per node on a cluster
        "health_check_interval": 30,
        "decode_responses": False,
    }
    if cluster:
        return AsyncRedisCluster.from_url(url, **options)
    return aioredis.Redis.from_url(url, **options)


def create_redis(url: str, timeout_s: float = 2.0, cluster: bool = False) -> SyncRedis:
    """A blocking Redis client for workers and jobs."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 30,
        "decode_responses": False,
    }
    if cluster:
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


async def redis_ready(client: AsyncRedis) -> tuple[bool, str]:
    """Readiness probe: (True, 'ok') or (False, the reason); a cluster pings every node."""
    try:
        await client.ping()
    except REDIS_ERRORS as exc:
        return False, f"redis unreachable: {exc}"
    return True, "ok"
