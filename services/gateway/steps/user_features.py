"""Step user_features: the user's state from the online store, read once per request."""

from __future__ import annotations

from services.gateway.request_run import RequestRun, StepFailed
from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps


async def read_user(req: RequestState, deps: StepDeps) -> None:
    """Profile, history, seen and blocked sets, impression counts, genre affinities.

    An emptied or rebuilding store would answer with a stranger (or half of the user): the
    step fails instead, so the answer is served as for an unknown user and marked degraded."""
    problem = deps.store_watch.problem if deps.store_watch is not None else ""
    if problem:
        raise StepFailed("user_features", problem, "store")
    req.user = await deps.store.get_user(req.user_id, req.now)


async def unknown_user(req: RequestState, _deps: StepDeps, _run: RequestRun) -> str:
    """Serve the user as unknown: no profile, so conservative filters (no restricted item)."""
    req.user = None
    req.user_state()
    return "unknown user"
