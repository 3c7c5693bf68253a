"""A delaying TCP proxy: slows one hop from the test, with no fault setting in the services."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from deploy.local.processes import RunningProcess, start, stop, wait_ready
from loadtests.serving_stack import service_spec, with_stage_urls


class DelayProxy:
    """A TCP proxy to ``upstream`` that holds what the client sends for ``delay_s``."""

    # Answers come back at once, so each request over it takes ``delay_s`` longer. It runs its
    # own event loop in a thread, so a synchronous test can use it (``with DelayProxy(...)``).

    def __init__(self, upstream: str, delay_s: float, port: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.delay_s = delay_s
        self.connections = 0
        self.port = port  # 0: any free port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("delay proxy did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        # asyncio.run cancels the connections still open when it returns

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(self._delayed(client_r, up_w), self._pipe(up_r, client_w))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            up_w.close()
            client_w.close()

    async def _delayed(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Each chunk is due ``delay_s`` after it arrived: a request split into several reads
        is delayed once, not once per read."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(due - time.monotonic(), 0.0))
                if not chunk:
                    dst.write_eof()
                    return
                dst.write(chunk)
                await dst.drain()

        sender = asyncio.ensure_future(forward())
        try:
            while True:
                chunk = await src.read(65536)
                queue.put_nowait((time.monotonic() + self.delay_s, chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()
        dst.close()


@contextmanager
def gateway_with_slow_stage(
    env: Mapping[str, str],
    procs: dict[str, RunningProcess],
    log_dir: Path,
    service: str,
    delay_s: float,
) -> Iterator[str]:
    """A gateway on the stage services ``procs`` whose calls to ``service`` are delayed."""
    # Yields the gateway's base URL; ``env`` may carry its budget file (CASCADE_LATENCY_BUDGET).
    with DelayProxy(procs[service].spec.url, delay_s) as proxy:
        genv = {
            **with_stage_urls(dict(env), procs),
            f"CASCADE_GATEWAY_{service.upper()}_URL": proxy.url,
        }
        proc = start(service_spec("gateway", genv, f"gateway_slow_{service}"), log_dir)
        try:
            wait_ready(proc)
            yield proc.spec.url
        finally:
            stop(proc)
