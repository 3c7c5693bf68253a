"""Resources a service holds for its lifetime, each registered as a readiness check.

Light on purpose: it imports no model, Kafka or Redis library. Packages that own a kind of
resource register it here (``shared.stream.producer.kafka_producer``, a ``ModelSet`` through
:meth:`Resources.models`), so a stateless service pays only for what it uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from shared.platform.http_client import ServiceClient, UpstreamError
from shared.platform.readiness import Readiness

if TYPE_CHECKING:
    from shared.platform.redis_client import AsyncRedis


class Loadable(Protocol):
    """Something loaded in the background that readiness waits for (a ModelSet)."""

    async def start(self) -> None:
        """Start loading."""
        ...

    async def stop(self) -> None:
        """Stop background work."""
        ...

    async def check(self) -> tuple[bool, str]:
        """Readiness."""
        ...


class Resources:
    """Creates clients (no connection at construction) and closes them together.

    ``read_token`` is what the service's clients of other services send when the platform
    protects its reads (None: reads are open)."""

    def __init__(self, readiness: Readiness, read_token: str | None = None) -> None:
        self.readiness = readiness
        self.read_token = read_token
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` at shutdown (last registered, first run)."""
        self._closers.append(closer)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine for the app's lifetime (a sync or refresh loop); cancelled at close."""
        task = asyncio.ensure_future(work)

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self.on_close(cancel)

    def redis(
        self, url: str, name: str = "redis", required: bool = True, cluster: bool = False
    ) -> AsyncRedis:
        """An async Redis (or Redis Cluster) client whose PING is a readiness check."""
        from shared.platform.redis_client import create_async_redis, redis_ready

        client = create_async_redis(url, cluster=cluster)
        self.readiness.add(name, lambda: redis_ready(client), required)
        self.on_close(client.aclose)
        return client

    def service(
        self, name: str, base_url: str, timeout_s: float, required: bool = False
    ) -> ServiceClient:
        """A pooled client for a downstream service; its /readyz is an (optional) check."""
        client = ServiceClient(name, base_url, timeout_s=timeout_s, token=self.read_token)
        self.on_close(client.aclose)

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

    async def models(self, models: Loadable, name: str = "models") -> None:
        """Start loading ``models`` (readiness waits for them); stop their polling at close."""
        self.readiness.add(name, models.check)
        self.on_close(models.stop)
        await models.start()

    async def aclose(self) -> None:
        """Run the shutdown hooks, last registered first."""
        for closer in reversed(self._closers):
            await closer()
