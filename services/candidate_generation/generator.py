"""CandidateGenerator: runs the sources concurrently, each under its own deadline, and merges."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence

from shared.features import UserFeatures
from shared.metrics import STAGE_ERRORS, STAGE_LATENCY
from shared.online_store.types import UserState
from shared.pipeline.merge import merge_sources
from shared.pipeline.stages import CandidateSource
from shared.pipeline.store import FeatureReader
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import Candidates, SourceResult, SourceStatus

log = logging.getLogger(__name__)


class CandidateGenerator:
    """Fail-open fan-out over the declared sources (a failed source contributes nothing)."""

    def __init__(
        self,
        sources: Sequence[CandidateSource],
        store: FeatureReader,
        service: str = "pipeline",
        user_timeout_s: float = 0.01,
    ) -> None:
        self.sources = list(sources)
        self.store = store
        self.service = service
        self.user_timeout_s = user_timeout_s
        # I/O sources start first so their Redis round trips overlap the CPU-bound ANN work.
        self._start_order = sorted(self.sources, key=lambda s: bool(getattr(s, "cpu_bound", 0)))

    async def generate(
        self,
        user_id: str,
        now: float,
        tunables: Tunables,
        user: Awaitable[UserState] | None = None,
    ) -> Candidates:
        """Candidates for ``user_id``; ``user`` is an already running read of the user's state.

        A failed or late user read serves the user as unknown (the sources that need no
        user state still run); the failure is listed under ``status["user_state"]``.
        """
        state, error, elapsed_ms = await self._user_state(user_id, now, user)
        active = [s for s in self._start_order if state.known or s.serves_unknown_users]
        done = await asyncio.gather(*(self._run(s, state, now, tunables) for s in active))
        by_name = {r.source: r for r in done}
        ordered = [by_name[s.name] for s in self.sources if s.name in by_name]
        merged = merge_sources(ordered, tunables.max_candidates)
        if error is not None:
            merged.status["user_state"] = SourceStatus(0, elapsed_ms, error)
        return merged

    async def _user_state(
        self, user_id: str, now: float, user: Awaitable[UserState] | None
    ) -> tuple[UserState, str | None, float]:
        start = time.perf_counter()
        # shield: a read the caller owns (the orchestrator's task) must not be cancelled here
        work = asyncio.shield(user) if user is not None else self.store.get_user(user_id, now)
        try:
            return await asyncio.wait_for(work, self.user_timeout_s), None, 0.0
        except TimeoutError:
            error = f"timeout after {self.user_timeout_s * 1000:.0f} ms"
        except Exception as exc:  # the store is down: serve as an unknown user
            error = f"{type(exc).__name__}: {exc}"
        STAGE_ERRORS.labels(self.service, "source:user_state", "failed").inc()
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        return UserState(UserFeatures(user_id=user_id), known=False), error, elapsed_ms

    async def _run(
        self, source: CandidateSource, user: UserState, now: float, tunables: Tunables
    ) -> SourceResult:
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(source.fetch(user, now, tunables), source.timeout_s)
        except TimeoutError:
            ms = source.timeout_s * 1000
            result = SourceResult.failed(source.name, f"timeout after {ms:.0f} ms")
        except Exception as exc:  # fail-open: one broken source never fails the request
            result = SourceResult.failed(source.name, f"{type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - start
        result.elapsed_ms = elapsed * 1000.0
        STAGE_LATENCY.labels(self.service, f"source:{source.name}").observe(elapsed)
        if result.error:
            STAGE_ERRORS.labels(self.service, f"source:{source.name}", "failed").inc()
            log.warning("source failed", extra={"source": source.name, "error": result.error})
        return result
