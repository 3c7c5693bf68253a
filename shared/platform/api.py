"""Helpers of the FastAPI routes: body parsing with 422s naming the field, orjson answers.

Bodies are validated by pydantic straight from bytes (no intermediate dicts); an invalid body
raises FastAPI's RequestValidationError, so the answer is the usual 422 naming the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


async def parse_body(request: Request, model: type[ModelT]) -> ModelT:
    """Validate the JSON body against ``model``; 422 with the field's location when invalid."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        for e in errors:
            e.pop("ctx", None)  # may hold exception objects that do not serialise
            e.pop("input", None)  # may be bytes that are not UTF-8 (was a 500), or large
        raise RequestValidationError(errors) from None


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """An orjson-rendered response; numpy arrays are serialised natively (NaN becomes null)."""
    return Response(
        orjson.dumps(content, option=_OPTS), status_code, headers, media_type="application/json"
    )
