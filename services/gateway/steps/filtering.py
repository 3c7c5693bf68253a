"""Step filtering: the filter chain's verdict per candidate; run here when the stage fails."""

from __future__ import annotations

from services.gateway.request_run import RequestRun
from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps


async def filter_candidates(req: RequestState, deps: StepDeps) -> None:
    """Remove what the chain removes (each removal under its filter's name)."""
    result = await deps.stage(req, "filtering").call(req.ctx(), req.frame)
    req.keep(result.frame["removed_by"], result.info.applied)


async def filter_here(req: RequestState, deps: StepDeps, _run: RequestRun) -> str:
    """The same chain in this process: restrictions are never skipped."""
    chain = deps.local_filtering
    req.keep(chain.apply(req.ctx(), req.frame), chain.names)
    return "filtered in the gateway"
