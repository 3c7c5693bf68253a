"""POST /v1/candidates: the merged candidates of one user."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.candidate_generation.generator import CandidateGenerator
from shared.model_loading import ModelLoadError
from shared.pipeline.transport import json_response, models_unavailable, parse_body
from shared.pipeline.wire import CandidatesBody, encode_candidates

router = APIRouter()


@router.post("/v1/candidates", tags=["stage"])
async def candidates(request: Request) -> Response:
    """Run every source for the user (fail-open per source) and merge with provenance."""
    body = await parse_body(request, CandidatesBody)
    generator: CandidateGenerator = request.app.state.generator
    try:
        versions = request.app.state.models.require().versions()
    except ModelLoadError as exc:
        return models_unavailable(exc)
    result = await generator.generate(body.user_id, body.now, body.tunables)
    result.model_versions = versions
    return json_response(encode_candidates(result))
