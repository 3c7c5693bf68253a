"""Gateway warm-up: readiness means the next request is served whole, not that a port is open.

Before ``/readyz`` turns 200 the gateway sends production-size synthetic calls through every
stage and the online store, ``copies`` at a time (opening as many pooled connections), until
one round succeeds. After ``give_up_s`` without a whole round it reports ready anyway and
says why: a stage that is down must degrade answers, not keep the platform out of service.
The rounds go on in the background until one succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from services.gateway.steps.deps import StepDeps
from shared.frame import Frame
from shared.pipeline.synthetic import WARMUP_ITEMS, WARMUP_USER, synthetic_context, synthetic_frame

log = logging.getLogger(__name__)


async def _stage_round(deps: StepDeps) -> None:
    """Every stage once with production-size input (raises on the first failure)."""
    stages = deps.stages
    seed_ids = [f"{WARMUP_USER}-{i}" for i in range(20)]
    cands = await stages["candidates"].call(synthetic_context(seed_ids), Frame([]))
    ids = cands.frame.ids[:WARMUP_ITEMS]
    ids += [f"{WARMUP_USER}-{i}" for i in range(WARMUP_ITEMS - len(ids))]
    ctx, frame = synthetic_context(ids), synthetic_frame(ids)
    now = time.time()
    await asyncio.gather(
        deps.store.get_user(WARMUP_USER, now),
        deps.store.get_items(ids, now),
        stages["filtering"].call(ctx, frame),
        stages["ranking"].call(ctx, frame),
        stages["reranking"].call(ctx, frame.take(np.arange(200))),
    )


async def warm_up_round(deps: StepDeps, copies: int, timeout_s: float) -> list[str]:
    """``copies`` concurrent stage rounds (one pooled connection each); the failures."""

    async def one() -> None:
        async with asyncio.timeout(timeout_s):
            await _stage_round(deps)

    results = await asyncio.gather(*(one() for _ in range(copies)), return_exceptions=True)
    return sorted({f"{type(r).__name__}: {str(r)[:200]}" for r in results if r is not None})


class GatewayWarmUp:
    """Runs warm-up rounds in the background until one succeeds; a readiness check."""

    def __init__(
        self,
        deps: StepDeps,
        copies: int = 8,
        timeout_s: float = 2.0,
        give_up_s: float = 10.0,
        before: Callable[[], Awaitable[object]] | None = None,
        retry_s: float = 0.5,
    ) -> None:
        self.deps = deps
        self.before = before  # e.g. the catalog preload: done once before the stage rounds
        self.copies = copies
        self.timeout_s = timeout_s
        self.give_up_s = give_up_s
        self.retry_s = retry_s
        self.done = False
        self.reason = "warm-up not started"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background rounds."""
        self._task = asyncio.create_task(self._run(), name="gateway-warmup")

    async def _run(self) -> None:
        start = time.monotonic()
        self.reason = "warming up: first round running"
        while True:
            t0 = time.perf_counter()
            failures = await self._before()
            if not failures:
                failures = await warm_up_round(self.deps, self.copies, self.timeout_s)
            ms = (time.perf_counter() - t0) * 1000.0
            if not failures:
                self.done, self.reason = True, f"ok: every stage answered ({ms:.0f} ms round)"
                log.info("warm-up done", extra={"round_ms": round(ms, 1)})
                return
            gave_up = self.done or time.monotonic() - start > self.give_up_s
            if gave_up and not self.done:
                log.warning("warm-up incomplete: ready anyway", extra={"failures": failures})
            self.done = gave_up
            prefix = f"warm-up incomplete after {self.give_up_s:.0f} s" if gave_up else "warming up"
            self.reason = f"{prefix}: " + "; ".join(failures)
            await asyncio.sleep(self.retry_s)

    async def _before(self) -> list[str]:
        if self.before is None:
            return []
        try:
            await self.before()
        except Exception as exc:  # reported as a readiness reason and retried
            return [f"{type(exc).__name__}: {str(exc)[:200]}"]
        self.before = None
        return []

    async def check(self) -> tuple[bool, str]:
        """Readiness: False until a round succeeded (or the give-up time passed)."""
        return self.done, self.reason

    async def stop(self) -> None:
        """Cancel a round still running (shutdown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
