"""What a service's OpenAPI document promises beyond its routes' own declarations.

The answers the framework itself gives are declared here once, for every FastAPI route of
every service: 400 for a body that is not JSON at all (FastAPI's own parse error), 422 for a
route with parameters or a body. The fast routes' answers are declared by
``fast_routes.declared_operation``. Shared bounded parameter types live here too: ``NowQuery``
(a clock override within the platform's epoch range, finite), ``STRICT_BODY`` and ``INTEGRAL``
(JSON's types as the schema states them).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator, ConfigDict

EPOCH_MIN_S = 946_684_800.0  # 2000-01-01: no served or ingested clock lies before it
EPOCH_MAX_S = 4_102_444_800.0  # 2100-01-01: past it, decay arithmetic overflows float64

# Request bodies take JSON's types as the schema states them: no "1" for 1, no 0 for false
# (pydantic's lax mode would accept both), and no NaN or Infinity (Python's json module parses
# those literals; orjson and msgspec refuse them).
STRICT_BODY = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON Schema's integer: 3 and 3.0, not 3.5, "3" or true (strict int alone refuses 3.0).
# Bounds go before it, on the int, so the document states them:
# ``Annotated[int, Field(ge=0, le=9), INTEGRAL]``.
INTEGRAL = BeforeValidator(_integral)

NowQuery = Annotated[
    float | None,
    Query(
        ge=EPOCH_MIN_S,
        le=EPOCH_MAX_S,
        allow_inf_nan=False,
        description="epoch seconds (2000-01-01 to 2100-01-01); default: server clock",
    ),
]

_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {}},
}
VALIDATION_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        }
    },
}
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head")


def declare_framework_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with FastAPI's own answers declared on every operation that can get them."""
    for path in schema.get("paths", {}).values():
        for method, op in path.items():
            if method not in _METHODS or "responses" not in op:
                continue
            responses = op["responses"]
            if "requestBody" in op:
                responses.setdefault(
                    "400",
                    {
                        "description": "the body could not be parsed at all",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                )
            if ("requestBody" in op or op.get("parameters")) and "422" not in responses:
                responses["422"] = {
                    "description": "a parameter or field is invalid (loc names it)",
                    "content": {"application/json": {"schema": VALIDATION_ERROR}},
                }
    return schema
