"""Open-loop HTTP load: requests sent on a fixed schedule, latency counted from the schedule.

A closed-loop client (send, wait, send) slows down when the server does, so the queueing it
causes never shows in its latencies (coordinated omission). Here request ``i`` is due at
``start + i / rate`` whatever happened before, and its latency runs from that due time to the
last byte of the answer: time spent waiting for a free connection or for the generator itself
counts. ``send_lag_ms`` (actual send minus due time) tells the generator's own lag apart.

One ``aiohttp.ClientSession`` with a keep-alive connector carries every request (the per-request
CPU against the raw-socket client it replaced is in docs/serving.md, "Load generator").
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import orjson
from yarl import URL

from shared.platform.auth import read_headers

# uvicorn closes a connection idle for 5 s (its default keep-alive); dropping ours first means
# a step never starts on a connection the server is about to close.
KEEPALIVE_S = 3.0
# Beyond this many connections requests wait for one in the client; the wait still counts in
# their latency (it runs from the due time), so the cap only bounds sockets under overload.
MAX_CONNECTIONS = 512
TIMEOUT_S = 10.0
_DEGRADED = b'"degraded":true'


@dataclass
class LoadResult:
    """Latencies (ms, from the scheduled send time) and counts of one load run."""

    rate: float
    latencies_ms: np.ndarray
    errors: int
    degraded: int
    n: int
    achieved_rps: float
    error_samples: list[str] = field(default_factory=list)
    degraded_reasons: Counter[str] = field(default_factory=Counter)
    send_lag_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wall_s: float = 0.0
    cpu_s: float = 0.0  # utime + stime of this process during the run


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process so far (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """One keep-alive ``aiohttp.ClientSession`` to one base URL; use with ``async with``."""

    def __init__(
        self, base_url: str, max_connections: int = MAX_CONNECTIONS, timeout_s: float = TIMEOUT_S
    ) -> None:
        self.base = base_url.rstrip("/")
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self._urls: dict[str, URL] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, keepalive_timeout=KEEPALIVE_S, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            headers=read_headers(),  # the read token, where the platform protects reads
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _url(self, path: str) -> URL:
        # Parsed once per distinct path: yarl's parsing is a visible share of a request's CPU.
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base + path, encoded=True)
        return url

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path``; the status and the whole body (raises on timeout or connection loss)."""
        assert self._session is not None, "use Client inside `async with`"
        async with self._session.get(self._url(path)) as resp:
            return resp.status, await resp.read()


async def send_one(client: Client, path: str, t0: float, res: LoadResult, lat: list[float]) -> None:
    """One request due at ``t0`` (perf_counter); its outcome is added to ``res`` and ``lat``."""
    try:
        status, body = await client.get(path)
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        res.errors += 1
        res.error_samples.append(repr(exc)[:200])
        return
    lat.append((time.perf_counter() - t0) * 1000.0)
    if status != 200:
        res.errors += 1
        res.error_samples.append(f"{status}: {body[:200]!r}")
    elif _DEGRADED in body:  # parse only the degraded answers (a full parse costs CPU)
        res.degraded += 1
        res.degraded_reasons.update(orjson.loads(body).get("degraded_reasons", []))


async def open_loop(
    url: str,
    paths: list[str],
    rate: float,
    duration_s: float,
    max_connections: int = MAX_CONNECTIONS,
    timeout_s: float = TIMEOUT_S,
) -> LoadResult:
    """Send at a fixed rate whatever the answers' speed (no coordinated omission)."""
    n = int(rate * duration_s)
    res = LoadResult(rate, np.zeros(0), 0, 0, n, 0.0)
    lat: list[float] = []
    lag = np.zeros(n)
    async with Client(url, max_connections, timeout_s) as client:
        cpu0, start = cpu_seconds(), time.perf_counter()
        tasks = []
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lag[i] = max(time.perf_counter() - due, 0.0) * 1000.0
            tasks.append(
                asyncio.create_task(send_one(client, paths[i % len(paths)], due, res, lat))
            )
        await asyncio.gather(*tasks)
        res.wall_s = time.perf_counter() - start
        res.cpu_s = cpu_seconds() - cpu0
    res.achieved_rps = n / res.wall_s if res.wall_s > 0 else 0.0
    res.latencies_ms, res.send_lag_ms = np.array(lat), lag
    return res


async def sequential(url: str, paths: list[str]) -> LoadResult:
    """One request at a time (the per-request cost without queueing)."""
    res = LoadResult(0.0, np.zeros(0), 0, 0, len(paths), 0.0)
    lat: list[float] = []
    async with Client(url) as client:
        cpu0, start = cpu_seconds(), time.perf_counter()
        for path in paths:
            await send_one(client, path, time.perf_counter(), res, lat)
        res.wall_s = time.perf_counter() - start
        res.cpu_s = cpu_seconds() - cpu0
    res.achieved_rps = len(paths) / res.wall_s if res.wall_s > 0 else 0.0
    res.latencies_ms = np.array(lat)
    return res
