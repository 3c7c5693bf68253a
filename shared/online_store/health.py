"""Is the online store whole? Empty (Redis lost its data) or being rebuilt, and saying so.

A Redis restarted without its data answers every read, with nothing: users look new, items
unknown, lists empty. Nothing fails, so without a check every answer would look whole while
it is not. Two signals, read together in one round trip:

- the catalog's id set (``catalog:ids``) is missing: the store is empty (never loaded, or its
  data was lost);
- ``store:rebuilding`` exists: the bootstrap is re-running (set by the feature store's keeper,
  with a TTL so a keeper that dies mid-way does not leave it forever).

``StoreWatch`` refreshes them in the background (one round trip a second) so the request path
reads a field, not Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shared.online_store import keys
from shared.platform.redis_client import REDIS_ERRORS

log = logging.getLogger(__name__)

REBUILDING_TTL_S = 900  # longer than a MovieLens-100K bootstrap (about a minute)


async def store_problem(redis: Any) -> str:
    """Why the store is not whole ("" when it is, or when Redis cannot be asked: an outage is
    the reads' own failure to report)."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.exists(keys.CATALOG_IDS)
        pipe.get(keys.STORE_REBUILDING)
        has_catalog, rebuilding = await pipe.execute()
    except REDIS_ERRORS:  # a cluster with no node reachable raises no RedisError
        return ""
    if rebuilding is not None:
        since = time.time() - float(rebuilding)
        return f"online store being rebuilt (bootstrap running for {since:.0f} s)"
    if not has_catalog:
        return "online store empty: no catalog (Redis lost its data, or was never loaded)"
    return ""


class StoreWatch:
    """``problem`` is kept current by a background task (every ``interval_s``)."""

    def __init__(self, redis: Any, interval_s: float = 1.0) -> None:
        self.redis = redis
        self.interval_s = interval_s
        self.problem = ""
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> str:
        """Ask Redis now; returns (and keeps) the answer."""
        problem = await store_problem(self.redis)
        if problem != self.problem:
            log.warning("online store: %s", problem or "whole again")
        self.problem = problem
        return problem

    async def start(self) -> None:
        """Check once, then keep checking in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="store-watch")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.refresh()

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
