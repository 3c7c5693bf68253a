"""POST /v1/rerank: the final list from the top ranked items."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.reranking.chain import RerankChain
from shared.model_loading import ModelLoadError
from shared.pipeline.transport import json_response, models_unavailable, parse_body
from shared.pipeline.wire import RerankBody, encode_reranked

router = APIRouter()


@router.post("/v1/rerank", tags=["stage"])
async def rerank(request: Request) -> Response:
    """Fatigue, freshness, MMR with a genre cap, exploration slots."""
    body = await parse_body(request, RerankBody)
    chain: RerankChain = request.app.state.chain
    try:
        return json_response(encode_reranked(chain.rerank(body.to_input())))
    except ModelLoadError as exc:
        return models_unavailable(exc)
