"""GET /v1/recommendations: validate, run the pipeline, answer with timings and log the list."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shared.logging import new_request_id
from shared.pipeline.orchestrator import Orchestrator, RecommendRequest
from shared.pipeline.recommendation import Recommendation
from shared.pipeline.transport import json_response
from shared.pipeline.wire import ID_PATTERN

log = logging.getLogger(__name__)
router = APIRouter()


class RecommendationQuery(BaseModel):
    """Query parameters; any other parameter is a 422 (``extra_forbidden``) naming it."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=ID_PATTERN, description="letters, digits, _ . : - (1-64)")
    k: int = Field(default=20, ge=1, le=100, description="list length")
    explain: bool = Field(default=False, description="per-item trace of every stage")


@router.get("/v1/recommendations", tags=["recommendations"])
async def recommendations(request: Request, q: Annotated[RecommendationQuery, Query()]) -> Response:
    """Recommendations for a user (an unknown user is served by the cold-start path)."""
    state = request.app.state
    rid = getattr(request.state, "request_id", "") or new_request_id()
    req = RecommendRequest(user_id=q.user_id, k=q.k, request_id=rid, explain=q.explain)
    try:
        rec = await state.orchestrator.recommend(req)
    except Exception:  # last line of defence: a bug must not turn into a 500
        log.exception("orchestrator failed")
        rec = _last_resort(state.orchestrator, req)
    if state.served_log is not None:
        state.served_log.log(rec.user_id, rec.to_served_event())
    return json_response(rec.to_response(), headers={"Server-Timing": rec.server_timing})


def _last_resort(orch: Orchestrator, req: RecommendRequest) -> Recommendation:
    """The last known trending list, marked degraded."""
    import numpy as np

    pairs = orch.last_trending[: req.k]
    return Recommendation(
        request_id=req.request_id, user_id=req.user_id, k=req.k, now=time.time(),
        item_ids=[p[0] for p in pairs], scores=np.array([p[1] for p in pairs], np.float32),
        propensity=np.ones(len(pairs), np.float32), explored=np.zeros(len(pairs), bool),
        cold_start="unknown_user",
        degraded=["gateway: internal error; fallback: last known trending list"],
    )  # fmt: skip
