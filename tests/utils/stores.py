"""The online store under test: a database of the session's Redis, or its Redis Cluster."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from redis.cluster import RedisCluster

from shared.platform.redis_client import AsyncRedis, SyncRedis, create_async_redis, create_redis

STORE_KINDS = ("node", "cluster")  # parametrize a test's store over both
_MARK = re.compile(rb"^(ev:|\{[^}]*\}:ev:)")  # ev:<id>; on a cluster {u:<id>}:ev:<id>, {i}:ev:<id>


@dataclass(frozen=True)
class StoreTarget:
    """Where a test's online store lives, and how a process reaches it."""

    url: str
    cluster: bool

    def client(self) -> SyncRedis:
        """A blocking client."""
        return create_redis(self.url, cluster=self.cluster)

    def async_client(self) -> AsyncRedis:
        """An asyncio client, as the services make it."""
        return create_async_redis(self.url, timeout_s=5.0, cluster=self.cluster)

    def env(self) -> dict[str, str]:
        """The settings of a service process on this store."""
        return {"CASCADE_REDIS_URL": self.url, "CASCADE_REDIS_CLUSTER": str(self.cluster).lower()}

    def flushed(self) -> SyncRedis:
        """A client on the emptied store (every primary of a cluster)."""
        client = self.client()
        if isinstance(client, RedisCluster):
            client.flushall(target_nodes=RedisCluster.PRIMARIES)
        else:
            client.flushdb()
        return client


def store_target(request: pytest.FixtureRequest, kind: str, db: int) -> StoreTarget:
    """Database ``db`` of the session's Redis, or the session's cluster (database 0 only;
    tests on it flush it: the suite runs one test at a time)."""
    if kind == "cluster":
        return StoreTarget(request.getfixturevalue("redis_cluster_url"), cluster=True)
    url = request.getfixturevalue("redis_url")
    return StoreTarget(url.rsplit("/", 1)[0] + f"/{db}", cluster=False)


def is_mark(key: bytes) -> bool:
    """A dedupe mark (one per event on one Redis, one per part of an event on a cluster)."""
    return bool(_MARK.match(key))


def applied_events(client: SyncRedis) -> int:
    """Distinct events applied: their marks on one Redis, their item parts' marks on a cluster."""
    pattern = b"{i}:ev:*" if isinstance(client, RedisCluster) else b"ev:*"
    return sum(1 for _ in client.scan_iter(match=pattern, count=5000))
