"""POST /v1/items: add (or update) a catalog item; it is retrievable as soon as this returns.

A write: it needs the admin token (shared/platform/auth.py).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from shared.frame import ID_PATTERN
from shared.models.item_indexer import ItemIndexer
from shared.models.onnx_model import ModelLoadError
from shared.online_store.types import ItemRecord
from shared.platform.api import json_response, parse_body
from shared.platform.auth import ADMIN, ADMIN_RESPONSES
from shared.platform.contracts import INTEGRAL, STRICT_BODY
from shared.platform.redis_client import REDIS_ERRORS

router = APIRouter()


class ItemBody(BaseModel):
    """Request body of POST /v1/items."""

    model_config = STRICT_BODY

    item_id: str = Field(pattern=ID_PATTERN)
    title: str = Field(default="", max_length=500)
    genres: list[str] = Field(default_factory=list, max_length=19)
    release_year: Annotated[int, Field(ge=1800, le=2200), INTEGRAL] | None = None
    age_restricted: bool = False
    regions: list[str] = Field(default_factory=list, max_length=300)

    def to_record(self) -> ItemRecord:
        """The catalog record, added now."""
        return ItemRecord(
            item_id=self.item_id, title=self.title, genres=tuple(self.genres),
            release_year=self.release_year, added_ts=time.time(),
            age_restricted=self.age_restricted, regions=frozenset(self.regions),
        )  # fmt: skip


_BODY = {
    "required": True,
    "content": {"application/json": {"schema": ItemBody.model_json_schema()}},
}


@router.post(
    "/v1/items",
    dependencies=ADMIN,
    status_code=201,
    tags=["catalog"],
    openapi_extra={"requestBody": _BODY},
    responses={**ADMIN_RESPONSES, 503: {"description": "models not ready, or Redis down"}},
)
async def add_item(request: Request) -> Response:
    """Write the item to the catalog, embed it with the item tower, insert it into the index."""
    body = await parse_body(request, ItemBody)
    indexer: ItemIndexer = request.app.state.indexer
    try:
        label = await indexer.add(body.to_record())
    except ModelLoadError as exc:
        return json_response({"detail": f"models not ready: {exc}"}, status_code=503)
    except REDIS_ERRORS as exc:  # nothing indexed: the catalog write came first
        return json_response({"detail": f"online store unavailable: {exc}"}, status_code=503)
    return json_response({"item_id": body.item_id, "indexed": True, "label": label}, 201)
