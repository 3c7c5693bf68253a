"""How an upstream's answer becomes the console's: same status and body, or a 502 naming it."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from services.console.upstream import Answer, upstream_error
from shared.platform.http_client import UpstreamError

ID = r"^[A-Za-z0-9_.:\-]{1,128}$"  # rollout and experiment ids: no path tricks


def passed_on(answer: Answer) -> Response:
    """The upstream's answer as it came (JSON; a non-JSON body as its text in ``detail``)."""
    if answer.data is None and answer.body:
        text = answer.body[:500].decode("utf-8", "replace")
        return JSONResponse({"detail": text}, status_code=answer.status)
    return JSONResponse(answer.data, status_code=answer.status)


def unanswered(exc: UpstreamError) -> Response:
    """502: the service did not answer (the detail names it and why)."""
    body: dict[str, Any] = {"detail": upstream_error(exc)}
    return JSONResponse(body, status_code=502)
