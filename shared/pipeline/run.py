"""RequestRun: one request's deadline, per-stage timings and degradation reasons."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.http_client import UpstreamError
from shared.metrics import STAGE_ERRORS, STAGE_LATENCY
from shared.pipeline.budget import LatencyBudget

T = TypeVar("T")


class StageFailed(Exception):
    """A stage failed or missed its deadline; ``reason`` goes into the degraded list."""

    def __init__(self, stage: str, reason: str, kind: str = "error") -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.kind = kind  # bounded label for metrics: timeout, deadline, unreachable, status, ...


@dataclass
class RequestRun:
    """Bookkeeping of one request: what is left of the budget, what each stage took."""

    budget: LatencyBudget
    service: str = "pipeline"
    start: float = field(default_factory=time.perf_counter)
    timings_ms: dict[str, float] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)

    def remaining_s(self) -> float:
        """Seconds left of the whole request's budget."""
        return self.budget.total_ms / 1000.0 - (time.perf_counter() - self.start)

    def deadline_s(self, stage: str) -> float:
        """The stage's own budget, cut to what is left of the total."""
        return min(self.budget.stage_s(stage), self.remaining_s())

    def degrade(self, stage: str, reason: str, fallback: str) -> None:
        """Record that ``stage`` failed and which fallback served instead."""
        self.degraded.append(f"{stage}: {reason}; fallback: {fallback}")

    async def call(self, stage: str, work: Awaitable[T], timeout_s: float | None = None) -> T:
        """Await ``work`` under the stage deadline; any failure becomes StageFailed."""
        timeout = self.deadline_s(stage) if timeout_s is None else timeout_s
        started = time.perf_counter()
        try:
            if timeout <= 0:
                raise StageFailed(stage, "request deadline exhausted", "deadline")
            return await asyncio.wait_for(work, timeout)
        except TimeoutError:
            raise StageFailed(stage, f"timeout after {timeout * 1000:.0f} ms", "timeout") from None
        except UpstreamError as exc:
            raise StageFailed(stage, f"{exc.kind}: {exc.detail[:200]}", exc.kind) from None
        except StageFailed:
            raise
        except Exception as exc:  # a broken stage degrades the answer, never fails it
            raise StageFailed(stage, f"{type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            if asyncio.iscoroutine(work) and timeout <= 0:
                work.close()  # never awaited: close it to avoid a "never awaited" warning
            elapsed = time.perf_counter() - started
            self.timings_ms[stage] = self.timings_ms.get(stage, 0.0) + elapsed * 1000.0
            STAGE_LATENCY.labels(self.service, stage).observe(elapsed)

    def failed(self, exc: StageFailed) -> None:
        """Count a stage failure in the metrics."""
        STAGE_ERRORS.labels(self.service, exc.stage, exc.kind).inc()

    def server_timing(self) -> str:
        """The ``Server-Timing`` header value (per-stage ms plus the total)."""
        parts = [f"{name};dur={ms:.2f}" for name, ms in self.timings_ms.items()]
        parts.append(f"total;dur={(time.perf_counter() - self.start) * 1000.0:.2f}")
        return ", ".join(parts)

    def summary(self) -> dict[str, Any]:
        """Timings rounded for a response body."""
        return {name: round(ms, 3) for name, ms in self.timings_ms.items()}
