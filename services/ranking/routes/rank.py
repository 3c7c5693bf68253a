"""POST /v1/rank: head scores and the blended score of a batch of candidates."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from services.ranking.ranker import MultiTaskRanker, UnknownHeadError
from shared.model_loading import ModelLoadError
from shared.pipeline.transport import json_response, models_unavailable, parse_body
from shared.pipeline.wire import RankBody, encode_scores

router = APIRouter()


@router.post("/v1/rank", tags=["stage"])
async def rank(request: Request) -> Response:
    """One ONNX run over all candidates of the request."""
    body = await parse_body(request, RankBody)
    ranker: MultiTaskRanker = request.app.state.ranker
    try:
        scores = ranker.score(body.user, body.items.to_columns(), body.now, body.weights)
    except ModelLoadError as exc:
        return models_unavailable(exc)
    except UnknownHeadError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "weights"), "msg": str(exc), "type": "value_error"}]
        ) from None
    return json_response(encode_scores(scores))
