"""Warm-up: readiness means the next request is served whole, not merely that a port is open.

A service that just started has cold paths: no pooled connection to the stage services or to
Redis yet, ONNX Runtime arenas sized for the schema check's small batch, hnswlib's visited
lists for a small ``ef``. Left to the first real requests, those costs run past the stage
deadlines and the answers come back degraded. So each stage service runs its stage code on
synthetic input of production size before it reports ready (``ModelHolder(prepare=...)``), and
the gateway calls every stage (and the online store) ``copies`` times concurrently, opening as
many pooled connections, until one round succeeds (:class:`GatewayWarmUp`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from shared.features import GENRES, UserFeatures
from shared.online_store.types import UserState
from shared.pipeline.backend import StageBackend
from shared.pipeline.filter_input import FilterInput, FilterUser
from shared.pipeline.items import ItemColumns, genre_mask
from shared.pipeline.rerank_state import RerankInput
from shared.pipeline.store import FeatureReader
from shared.pipeline.tunables import DEFAULT_TUNABLES

log = logging.getLogger(__name__)

WARMUP_USER = "cascade-warmup"  # an id no real user has: served by the cold-start sources
WARMUP_ITEMS = 500  # the default candidate count (Tunables.max_candidates)


def synthetic_items(item_ids: list[str], seed: int = 0) -> ItemColumns:
    """Plausible item columns (genres, years, counters) for ``item_ids``."""
    rng = np.random.default_rng(seed)
    n = len(item_ids)
    cols = ItemColumns.unknown(item_ids)
    cols.found = np.ones(n, dtype=bool)
    pairs = rng.integers(0, len(GENRES), size=(n, 2))
    cols.genre_mask = np.fromiter(
        (genre_mask((GENRES[a], GENRES[b])) for a, b in pairs), np.int64, n
    )
    cols.release_year = rng.integers(1930, 2000, n).astype(np.float64)
    cols.counts = np.sort(rng.integers(0, 500, (n, 4)), axis=1).astype(np.float64)
    cols.like_count = cols.counts[:, 3] / 3
    cols.rating_count = cols.counts[:, 3].copy()
    cols.added_ts = np.full(n, time.time() - 86_400.0)
    return cols


def synthetic_user(item_ids: list[str], user_id: str = WARMUP_USER) -> UserFeatures:
    """A returning user with a profile, a history and genre affinities."""
    return UserFeatures(
        user_id=user_id, age=30, gender="F", occupation="other", zip_code="00000",
        history=tuple(item_ids[:20]), genre_affinity=[1.0] * len(GENRES), n_events=20,
        rating_sum=70.0, n_ratings=20, last_event_ts=time.time() - 3600.0,
    )  # fmt: skip


def synthetic_rerank_input(item_ids: list[str], k: int = 20) -> RerankInput:
    """The re-ranker's input for ``item_ids`` (scores falling, a few impressions)."""
    n = len(item_ids)
    cols = synthetic_items(item_ids, seed=1)
    return RerankInput(
        item_ids=list(item_ids), score=np.linspace(1.0, 0.0, n, dtype=np.float32),
        genre_mask=cols.genre_mask, added_ts=cols.added_ts,
        impressions=np.arange(n, dtype=np.int64) % 3, k=k, now=time.time(), seed=7,
        tunables=DEFAULT_TUNABLES,
    )  # fmt: skip


async def _stage_round(stages: StageBackend, store: FeatureReader, timeout_s: float) -> None:
    """Every stage once with production-size input (raises on the first failure)."""
    now = time.time()
    unknown = asyncio.ensure_future(_unknown_user())
    cands = await stages.candidates(WARMUP_USER, now, DEFAULT_TUNABLES, unknown, timeout_s)
    ids = cands.item_ids[:WARMUP_ITEMS]
    ids += [f"{WARMUP_USER}-{i}" for i in range(WARMUP_ITEMS - len(ids))]
    items = synthetic_items(ids)
    user = synthetic_user(ids)
    await asyncio.gather(
        store.get_user(WARMUP_USER, now),
        store.get_items(ids, now),
        stages.filter(FilterInput.build(items, FilterUser()), timeout_s),
        stages.rank(user, items, now, None, timeout_s),
        stages.rerank(synthetic_rerank_input(ids[:200]), timeout_s),
    )


async def _unknown_user() -> UserState:
    return UserState(UserFeatures(user_id=WARMUP_USER), known=False)


async def warm_up_round(
    stages: StageBackend, store: FeatureReader, copies: int, timeout_s: float
) -> list[str]:
    """``copies`` concurrent stage rounds (one pooled connection each); the failures."""
    results = await asyncio.gather(
        *(_stage_round(stages, store, timeout_s) for _ in range(copies)), return_exceptions=True
    )
    return sorted({f"{type(r).__name__}: {str(r)[:200]}" for r in results if r is not None})


class GatewayWarmUp:
    """Runs warm-up rounds in the background until one succeeds; a readiness check.

    After ``give_up_s`` without a whole round the gateway reports ready anyway (and says why):
    a stage that is down must degrade answers, not keep the whole platform out of service. The
    rounds go on in the background (every ``retry_s``) until one succeeds, so a stage that
    comes up late still meets warm connections.
    """

    def __init__(
        self,
        stages: StageBackend,
        store: FeatureReader,
        copies: int = 8,
        timeout_s: float = 2.0,
        give_up_s: float = 10.0,
        before: Callable[[], Awaitable[object]] | None = None,
        retry_s: float = 0.5,
    ) -> None:
        self.stages = stages
        self.store = store
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
                failures = await warm_up_round(self.stages, self.store, self.copies, self.timeout_s)
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
