"""Connections a service holds for its lifetime, each registered as a readiness check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis

from shared.http_client import ServiceClient, UpstreamError
from shared.kafka import LazyProducer
from shared.model_loading import ModelHolder
from shared.readiness import Readiness
from shared.redis_client import create_async_redis, redis_ready


class Dependencies:
    """Creates clients lazily-safe (no connection at construction) and closes them together."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness
        self._redis: list[aioredis.Redis] = []
        self._producers: list[LazyProducer] = []
        self._clients: list[ServiceClient] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` at shutdown (before connections close), e.g. to stop a worker thread."""
        self._closers.append(closer)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine for the app's lifetime (a sync or refresh loop); cancelled at close."""
        task = asyncio.ensure_future(work)

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self.on_close(cancel)

    def redis(self, url: str, name: str = "redis", required: bool = True) -> aioredis.Redis:
        """An async Redis client whose PING is a readiness check."""
        client = create_async_redis(url)
        self._redis.append(client)
        self.readiness.add(name, lambda: redis_ready(client), required)
        return client

    def kafka_producer(
        self, bootstrap: str, name: str = "kafka", required: bool = True, **overrides: Any
    ) -> LazyProducer:
        """A producer created on first use; its broker connection is a readiness check."""
        producer = LazyProducer(bootstrap, **overrides)
        self._producers.append(producer)

        async def check() -> tuple[bool, str]:
            return await asyncio.to_thread(producer.ready)

        self.readiness.add(name, check, required)
        return producer

    def service(
        self, name: str, base_url: str, timeout_s: float, required: bool = False
    ) -> ServiceClient:
        """A pooled client for a downstream service; its /readyz is an (optional) check."""
        client = ServiceClient(name, base_url, timeout_s=timeout_s)
        self._clients.append(client)

        async def check() -> tuple[bool, str]:
            try:
                status = await client.get_json("/readyz", timeout_s=0.5)
            except UpstreamError as exc:
                return False, str(exc)
            answered = status.get("service") if isinstance(status, dict) else None
            if answered != name:  # a URL pointing at the wrong service is a misconfiguration
                return False, f"{base_url} is {answered or 'not a Cascade service'}, not {name}"
            return True, "ok"

        self.readiness.add(name, check, required)
        return client

    async def models(self, holder: ModelHolder) -> None:
        """Load the first bundle (readiness waits for it) and stop hot-swap polling at close."""
        self.readiness.add("models", holder.check)
        self.on_close(holder.stop)
        await holder.start()

    async def aclose(self) -> None:
        """Run shutdown hooks, then close every client this object created."""
        for closer in reversed(self._closers):
            await closer()
        for client in self._clients:
            await client.aclose()
        for r in self._redis:
            await r.aclose()
        for producer in self._producers:
            await asyncio.to_thread(producer.close)
