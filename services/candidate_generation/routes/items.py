"""POST /v1/items: add (or update) a catalog item; it is retrievable as soon as this returns."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError

from services.candidate_generation.item_indexer import ItemBody, ItemIndexer
from shared.model_loading import ModelLoadError
from shared.pipeline.transport import json_response, models_unavailable, parse_body

router = APIRouter()


@router.post("/v1/items", status_code=201, tags=["catalog"])
async def add_item(request: Request) -> Response:
    """Write the item to the catalog, embed it with the item tower, insert it into the index."""
    body = await parse_body(request, ItemBody)
    indexer: ItemIndexer = request.app.state.indexer
    try:
        label = await indexer.add(body.to_record())
    except ModelLoadError as exc:
        return models_unavailable(exc)
    except (RedisError, OSError) as exc:  # nothing indexed: the catalog write came first
        return json_response({"detail": f"online store unavailable: {exc}"}, status_code=503)
    return json_response({"item_id": body.item_id, "indexed": True, "label": label}, 201)
