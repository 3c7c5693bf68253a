"""POST /v1/filter: survivors and removals with reasons."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.filtering.chain import FilterChain
from shared.pipeline.transport import json_response, parse_body
from shared.pipeline.wire import FilterBody, encode_filter_result

router = APIRouter()


@router.post("/v1/filter", tags=["stage"])
async def filter_candidates(request: Request) -> Response:
    """Apply the filter chain (cheapest first) to the candidates."""
    body = await parse_body(request, FilterBody)
    chain: FilterChain = request.app.state.filters
    return json_response(encode_filter_result(chain.apply(body.to_input())))
