"""Posts the simulated users' events to the events API in batches, as a well-behaved client.

A batch goes out when ``batch_size`` events are held or ``flush_interval_s`` after the last
flush. A 503 or a lost connection is retried with the same batch (the same event ids, which
every consumer deduplicates) after ``Retry-After`` (capped); a 4xx is not retried: the batch is
counted as failed and its reason kept in the summary.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import orjson

from loadtests.simulator.settings import DriverSettings
from loadtests.simulator.summary import RunSummary
from shared.platform.auth import admin_headers

_RETRYABLE = {502, 503, 504}


class EventPoster:
    """Buffers events and posts them to ``POST {events_url}/v1/events``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        events_url: str,
        settings: DriverSettings,
        summary: RunSummary,
    ) -> None:
        self.http = http
        self.url = events_url.rstrip("/") + "/v1/events"
        self.settings = settings
        self.summary = summary
        self._buffer: list[dict[str, Any]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

    def add(self, events: list[dict[str, Any]]) -> None:
        """Queue events; a full batch is sent at once (in the background)."""
        self._buffer.extend(events)
        while len(self._buffer) >= self.settings.batch_size:
            self._send(self._buffer[: self.settings.batch_size])
            del self._buffer[: self.settings.batch_size]

    async def run(self) -> None:
        """Flush partial batches every ``flush_interval_s`` until :meth:`close`."""
        while not self._closed.is_set():
            try:
                await asyncio.wait_for(self._closed.wait(), self.settings.flush_interval_s)
            except TimeoutError:
                self._flush()

    async def close(self) -> None:
        """Send what is held and wait until every batch has its answer."""
        self._closed.set()
        self._flush()
        while self._inflight:
            await asyncio.gather(*list(self._inflight))

    def _flush(self) -> None:
        if self._buffer:
            self._send(self._buffer)
            self._buffer = []

    def _send(self, batch: list[dict[str, Any]]) -> None:
        task = asyncio.create_task(self._post(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"events": batch})
        headers = {"content-type": "application/json", **admin_headers()}  # if events need it
        problem = ""
        for attempt in range(self.settings.post_retries + 1):
            wait = min(0.2 * 2**attempt, self.settings.max_retry_wait_s)
            try:
                async with self.http.post(self.url, data=body, headers=headers) as resp:
                    text = await resp.read()
                    if resp.status == 202:
                        self.summary.batches_posted += 1
                        self.summary.events_posted.update(Counter(e["type"] for e in batch))
                        return
                    problem = f"events API {resp.status}: {text[:200]!r}"
                    if resp.status not in _RETRYABLE:
                        break
                    wait = min(_retry_after(resp, wait), self.settings.max_retry_wait_s)
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                problem = f"events API: {exc!r}"
            if attempt < self.settings.post_retries:
                await asyncio.sleep(wait)
        self.summary.batches_failed += 1
        self.summary.events_failed += len(batch)
        self.summary.note(problem)


def _retry_after(resp: aiohttp.ClientResponse, default: float) -> float:
    """The server's Retry-After in seconds, else ``default``."""
    try:
        return float(resp.headers.get("Retry-After", default))
    except ValueError:
        return default
