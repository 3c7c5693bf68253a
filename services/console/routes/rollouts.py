"""Rollouts and experiments: read from the rollouts service; its writes passed on with the
caller's token (the service checks it)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.console.console import Console
from services.console.routes.common import ID, passed_on, unanswered
from services.console.routes.deps import Authorization, ConsoleDep
from shared.platform.http_client import UpstreamError

router = APIRouter(prefix="/api", tags=["rollouts"])
SERVICE = "rollouts"
LISTED = 20
ItemId = Annotated[str, Path(pattern=ID)]


async def _with_history(console: Console, kind: str, row: dict[str, Any]) -> dict[str, Any]:
    base = f"/v1/{kind}/{row['id']}"
    reads = [console.read(SERVICE, f"{base}/history")]
    if kind == "experiments":
        reads.append(console.read(SERVICE, f"{base}/analysis?looks=1"))
    got = await asyncio.gather(*reads)
    row = {**row, "history": got[0].get("decisions", []), "history_error": got[0].get("error")}
    if kind == "experiments":
        row.update(analysis=got[1].get("latest"), report=f"/api/experiments/{row['id']}/report")
    return row


@router.get("/rollouts")
async def overview(console: ConsoleDep) -> dict[str, Any]:
    """Recent rollouts and experiments with their decisions and latest analysis."""
    listed = await asyncio.gather(
        console.read(SERVICE, f"/v1/rollouts?limit={LISTED}"),
        console.read(SERVICE, f"/v1/experiments?limit={LISTED}"),
    )
    error = listed[0].get("error") or listed[1].get("error")
    if error:
        return {"reachable": False, "error": error, "rollouts": [], "experiments": []}
    rollouts, experiments = listed[0].get("rollouts", []), listed[1].get("experiments", [])
    rows = await asyncio.gather(
        *(_with_history(console, "rollouts", r) for r in rollouts),
        *(_with_history(console, "experiments", e) for e in experiments),
    )
    return {
        "reachable": True,
        "error": None,
        "rollouts": rows[: len(rollouts)],
        "experiments": rows[len(rollouts) :],
    }


class ActionIn(BaseModel):
    """Why: recorded in the history by the rollouts service."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


async def _act(console: Console, path: str, body: ActionIn | None, auth: str | None) -> Response:
    payload = (body or ActionIn()).model_dump()
    try:
        return passed_on(await console.forward(SERVICE, "POST", path, payload, auth))
    except UpstreamError as exc:
        return unanswered(exc)


@router.post("/rollouts/{rollout_id}/{action}", responses={401: {}, 404: {}, 409: {}, 502: {}})
async def rollout_action(
    rollout_id: ItemId,
    action: Literal["promote", "resume", "abort"],
    console: ConsoleDep,
    body: ActionIn | None = None,
    authorization: Authorization = None,
) -> Response:
    """Promote, resume or abort a rollout (the rollouts service checks the token)."""
    return await _act(console, f"/v1/rollouts/{rollout_id}/{action}", body, authorization)


@router.post("/experiments/{experiment_id}/stop", responses={401: {}, 404: {}, 409: {}, 502: {}})
async def stop_experiment(
    experiment_id: ItemId,
    console: ConsoleDep,
    body: ActionIn | None = None,
    authorization: Authorization = None,
) -> Response:
    """Stop an experiment (the rollouts service checks the token)."""
    return await _act(console, f"/v1/experiments/{experiment_id}/stop", body, authorization)


@router.get(
    "/experiments/{experiment_id}/report",
    response_class=HTMLResponse,
    responses={404: {"description": "no such experiment"}, 502: {"description": "unreachable"}},
)
async def experiment_report(experiment_id: ItemId, console: ConsoleDep) -> Response:
    """The rollouts service's HTML report of an experiment (intervals over time)."""
    try:
        answer = await console.forward(SERVICE, "GET", f"/v1/experiments/{experiment_id}/report")
    except UpstreamError as exc:
        return unanswered(exc)
    if not answer.ok:
        return passed_on(answer)
    return HTMLResponse(answer.body)
