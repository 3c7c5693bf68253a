"""Step ranking: the ranker's score and heads; retrieval order when it fails."""

from __future__ import annotations

import numpy as np

from services.gateway.request_run import RequestRun
from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps


async def rank(req: RequestState, deps: StepDeps) -> None:
    """Score every candidate under the variant's ranker."""
    result = await deps.stage(req, "ranking").call(req.ctx(), req.frame)
    req.frame.update(result.frame)
    req.heads = list(result.info.heads)
    req.models["ranker"] = result.info.model


async def retrieval_order(req: RequestState, _deps: StepDeps, _run: RequestRun) -> str:
    """A score that reproduces retrieval order (1 for the first item, falling linearly)."""
    n = len(req.frame)
    req.frame.set("score", (1.0 - np.arange(n, dtype=np.float32) / max(n, 1)).astype(np.float32))
    return "retrieval order"
