"""The runner: executes the declared pipeline for one request, the same way in both modes.

Deadlines, fallbacks, degrade reasons, per-step metrics, ``Server-Timing`` and the timings of
the explain trace are the runner's job, written once here; a step only does its work
(``call``) and, when that fails or runs late, serves something else (``fallback``, which says
what it served). A request never fails because a step did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from services.gateway.request_run import RequestRun, StepFailed
from services.gateway.request_state import RequestState
from shared.pipeline.budget import LatencyBudget
from shared.platform.metrics import STAGE_ERRORS

log = logging.getLogger(__name__)
T = TypeVar("T")


StepCall = Callable[[RequestState, Any], Awaitable[None]]
Fallback = Callable[[RequestState, Any, RequestRun], Awaitable[str]]


@dataclass(frozen=True)
class Step:
    """One step of a request: what it calls, its budget entry, its fallback.

    ``stage`` names the stage service the step calls (None: the gateway does the work
    itself, e.g. a read of the online store); ``skip_empty`` skips it when there are no
    candidates to work on.
    """

    name: str
    call: StepCall
    fallback: Fallback
    budget: str = ""
    stage: str | None = None
    skip_empty: bool = False

    @property
    def budget_entry(self) -> str:
        """The ``stages:`` entry of the latency budget this step runs under."""
        return self.budget or self.name


@dataclass(frozen=True)
class Parallel:
    """Steps that run at the same time (their fallbacks too)."""

    steps: tuple[Step, ...]


Pipeline = Sequence[Step | Parallel]


class Runner:
    """Runs ``pipeline`` over ``deps`` (what the steps call: stage clients, the store)."""

    def __init__(
        self, pipeline: Pipeline, deps: Any, budget: LatencyBudget, service: str = "gateway"
    ) -> None:
        self.pipeline = tuple(pipeline)
        self.deps = deps
        self.budget = budget
        self.service = service

    def steps(self) -> list[Step]:
        """Every step, in the order declared (parallel groups flattened)."""
        out: list[Step] = []
        for item in self.pipeline:
            out.extend(item.steps if isinstance(item, Parallel) else (item,))
        return out

    async def run(self, req: RequestState) -> RequestState:
        """Every step in order; ``req`` holds the answer (degraded, never failed)."""
        req.run = RequestRun(self.budget, self.service)
        for item in self.pipeline:
            if isinstance(item, Parallel):
                await asyncio.gather(*(self._step(s, req) for s in item.steps))
            else:
                await self._step(item, req)
        return req

    async def _step(self, step: Step, req: RequestState) -> None:
        if step.skip_empty and not len(req.frame):
            return
        run = req.run
        try:
            await run.call(step.name, step.call(req, self.deps), step.budget_entry)
        except StepFailed as exc:
            STAGE_ERRORS.labels(self.service, exc.step, exc.kind).inc()
            served = await step.fallback(req, self.deps, run)
            run.degrade(step.name, exc.reason, served)
