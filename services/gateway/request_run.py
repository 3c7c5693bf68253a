"""RequestRun: one request's deadline, per-step timings and degrade reasons (the runner's
bookkeeping), and StepFailed, how a step's failure reaches the runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from shared.pipeline.budget import LatencyBudget
from shared.platform.http_client import UpstreamError
from shared.platform.metrics import STAGE_LATENCY

T = TypeVar("T")


class StepFailed(Exception):
    """A step failed or missed its deadline; ``reason`` goes into the degraded list."""

    def __init__(self, step: str, reason: str, kind: str = "error") -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason
        self.kind = kind  # bounded label for metrics: timeout, deadline, unreachable, status, ...


@dataclass
class RequestRun:
    """Bookkeeping of one request: what is left of the budget, what each step took."""

    budget: LatencyBudget
    service: str = "gateway"
    start: float = field(default_factory=time.perf_counter)
    timings_ms: dict[str, float] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)

    def remaining_s(self) -> float:
        """Seconds left of the whole request's budget."""
        return self.budget.total_ms / 1000.0 - (time.perf_counter() - self.start)

    def deadline_s(self, entry: str) -> float:
        """A budget entry's own deadline, cut to what is left of the total."""
        return min(self.budget.stage_s(entry), self.remaining_s())

    def degrade(self, step: str, reason: str, fallback: str) -> None:
        """Record that ``step`` failed and which fallback served instead."""
        self.degraded.append(f"{step}: {reason}; fallback: {fallback}")

    async def call(self, name: str, work: Awaitable[T], entry: str | None = None) -> T:
        """Await ``work`` under the deadline of ``entry`` (default ``name``); StepFailed on any
        failure. The time it took is recorded under ``name``."""
        timeout = self.deadline_s(entry or name)
        started = time.perf_counter()
        try:
            if timeout <= 0:
                raise StepFailed(name, "request deadline exhausted", "deadline")
            async with asyncio.timeout(timeout):
                return await work
        except TimeoutError:
            raise StepFailed(name, f"timeout after {timeout * 1000:.0f} ms", "timeout") from None
        except UpstreamError as exc:
            raise StepFailed(name, f"{exc.kind}: {exc.detail[:200]}", exc.kind) from None
        except StepFailed:
            raise
        except Exception as exc:  # a broken step degrades the answer, never fails it
            raise StepFailed(name, f"{type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            if asyncio.iscoroutine(work) and timeout <= 0:
                work.close()  # never awaited: close it to avoid a "never awaited" warning
            elapsed = time.perf_counter() - started
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + elapsed * 1000.0
            STAGE_LATENCY.labels(self.service, name).observe(elapsed)

    def server_timing(self) -> str:
        """The ``Server-Timing`` header value (per-step ms plus the total)."""
        parts = [f"{name};dur={ms:.2f}" for name, ms in self.timings_ms.items()]
        parts.append(f"total;dur={(time.perf_counter() - self.start) * 1000.0:.2f}")
        return ", ".join(parts)

    def summary(self) -> dict[str, float]:
        """Timings rounded for a response body."""
        return {name: round(ms, 3) for name, ms in self.timings_ms.items()}
