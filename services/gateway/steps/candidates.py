"""Step candidates: the candidate generation stage; the trending list when it fails."""

from __future__ import annotations

import numpy as np

from services.gateway.request_run import RequestRun, StepFailed
from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps
from shared.frame import Frame

FALLBACK_SOURCE = "source_trending_fallback"
FALLBACK_LENGTH = 200


async def generate(req: RequestState, deps: StepDeps) -> None:
    """Every source of the candidate stage, merged (an empty merge of failed sources fails)."""
    result = await deps.stage(req, "candidates").call(req.ctx(), Frame([]))
    req.sources = dict(result.info.sources)
    req.models.update(result.info.models)
    errors = [f"{name}: {st.error}" for name, st in req.sources.items() if st.error]
    if len(result.frame) == 0 and errors:  # every source failed open: nothing to rank
        raise StepFailed(
            "candidates", "no candidates, sources failed (" + "; ".join(errors)[:300] + ")", "empty"
        )
    req.frame = req.candidates = result.frame


async def trending_list(req: RequestState, deps: StepDeps, run: RequestRun) -> str:
    """The trending list from the store, else the last one this gateway read."""
    try:
        pairs = await run.call("fallback", deps.store.trending(FALLBACK_LENGTH, req.now))
        deps.last_trending = pairs
        served = "trending"
    except StepFailed:
        pairs, served = deps.last_trending, "last known trending list"
    scores = np.fromiter((p[1] for p in pairs), np.float32, len(pairs))
    # the ranker's EASE input is unknown here: 0, as for a user without history
    ease = np.zeros(len(pairs), dtype=np.float32)
    req.frame = req.candidates = Frame(
        [p[0] for p in pairs], {FALLBACK_SOURCE: scores, "ease_score": ease}
    )
    return served


async def refresh_trending(deps: StepDeps, now: float) -> None:
    """Keep the last-resort list fresh (the gateway calls this periodically)."""
    deps.last_trending = await deps.store.trending(FALLBACK_LENGTH, now)
