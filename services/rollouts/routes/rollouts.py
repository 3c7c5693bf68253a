"""The controller's API: start, look at, promote, resume and abort rollouts; the assignments.

Writes (start, promote, resume, abort) need ``Authorization: Bearer <admin token>``
(shared/platform/auth.py); reads are open. A refused
request changes nothing and says why: 404 unknown rollout, 409 a conflict (a second rollout
of a model already rolling out, an ended rollout), 422 a bad plan or candidate (the field or
the check that failed), 503 when the registry cannot be reached to check the candidate.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from services.rollouts.controller import Controller, Refusal
from services.rollouts.plan import Plan
from services.rollouts.store import DecisionRecord, Rollout
from shared.platform.auth import ADMIN, ADMIN_RESPONSES

router = APIRouter(tags=["rollouts"])


class Action(BaseModel):
    """Body of promote, resume and abort (optional)."""

    reason: str = Field("", max_length=500, description="recorded in the history")


def _controller(request: Request) -> Controller:
    controller: Controller = request.app.state.controller
    return controller


def _refused(exc: Refusal) -> JSONResponse:
    return JSONResponse({"detail": exc.reason}, status_code=exc.status)


def rollout_json(r: Rollout, controller: Controller) -> dict[str, Any]:
    """A rollout's status as the API and the CLI show it."""
    step = r.current_step
    return {
        "id": r.id,
        "model": r.plan.model,
        "candidate": dict(r.plan.candidate),
        "production_before": r.production_before,
        "state": r.state,
        "phase": r.phase,
        "step": r.step,
        "steps": len(r.plan.steps),
        "current_step": step.model_dump() if step is not None else None,
        "step_started": r.step_started,
        "extensions": r.extensions,
        "hold_reason": r.hold_reason,
        "created": r.created,
        "updated": r.updated,
        "last_look": controller.latest.get(r.id),
        "plan": r.plan.model_dump(),
    }


def decision_json(d: DecisionRecord) -> dict[str, Any]:
    """One entry of the history."""
    return {"ts": d.ts, "step": d.step, "decision": d.decision, "reasons": d.reasons,
            "figures": d.figures}  # fmt: skip


@router.post(
    "/v1/rollouts",
    dependencies=ADMIN,
    status_code=201,
    responses={**ADMIN_RESPONSES, 409: {}, 422: {}, 503: {}},
)
async def start_rollout(plan: Plan, request: Request) -> Any:
    """Check the candidate and start the rollout (nothing moves when it is refused)."""
    controller = _controller(request)
    try:
        r = await controller.start(plan)
    except Refusal as exc:
        return _refused(exc)
    return JSONResponse(rollout_json(r, controller), status_code=201)


@router.get("/v1/rollouts")
async def list_rollouts(request: Request, active: bool = False, limit: int = 50) -> Any:
    """Rollouts, newest first (``active=true``: running or holding only)."""
    controller = _controller(request)
    rows = controller.store.all(active_only=active, limit=max(1, min(limit, 500)))
    return {"rollouts": [rollout_json(r, controller) for r in rows]}


@router.get("/v1/rollouts/{rollout_id}", responses={404: {}})
async def get_rollout(rollout_id: str, request: Request) -> Any:
    """One rollout's status and its last look's figures."""
    controller = _controller(request)
    r = controller.store.get(rollout_id)
    if r is None:
        return JSONResponse({"detail": f"no rollout {rollout_id}"}, status_code=404)
    return rollout_json(r, controller)


@router.get("/v1/rollouts/{rollout_id}/history", responses={404: {}})
async def rollout_history(rollout_id: str, request: Request) -> Any:
    """Every decision of a rollout with its reasons and figures, oldest first."""
    controller = _controller(request)
    if controller.store.get(rollout_id) is None:
        return JSONResponse({"detail": f"no rollout {rollout_id}"}, status_code=404)
    history = controller.store.history(rollout_id)
    return {"id": rollout_id, "decisions": [decision_json(d) for d in history]}


async def _act(request: Request, rollout_id: str, body: Action | None, action: str) -> Any:
    controller = _controller(request)
    reason = body.reason if body is not None else ""
    try:
        r = await getattr(controller, action)(rollout_id, reason)
    except Refusal as exc:
        return _refused(exc)
    return rollout_json(r, controller)


@router.post(
    "/v1/rollouts/{rollout_id}/promote",
    dependencies=ADMIN,
    responses={**ADMIN_RESPONSES, 404: {}, 409: {}},
)
async def promote_rollout(rollout_id: str, request: Request, body: Action | None = None) -> Any:
    """Promote the candidate now (the steps left are skipped)."""
    return await _act(request, rollout_id, body, "promote")


@router.post(
    "/v1/rollouts/{rollout_id}/resume",
    dependencies=ADMIN,
    responses={**ADMIN_RESPONSES, 404: {}, 409: {}},
)
async def resume_rollout(rollout_id: str, request: Request, body: Action | None = None) -> Any:
    """Carry on from a hold with the next step."""
    return await _act(request, rollout_id, body, "resume")


@router.post(
    "/v1/rollouts/{rollout_id}/abort",
    dependencies=ADMIN,
    responses={**ADMIN_RESPONSES, 404: {}, 409: {}},
)
async def abort_rollout(rollout_id: str, request: Request, body: Action | None = None) -> Any:
    """Stop: traffic back on production, the candidate's aliases removed."""
    return await _act(request, rollout_id, body, "abort")


_ENCODER = msgspec.json.Encoder()


@router.get("/v1/assignments")
async def assignments(request: Request) -> Response:
    """The split every gateway applies (polled by each gateway every second)."""
    return Response(_ENCODER.encode(_controller(request).assignments()),
                    media_type="application/json")  # fmt: skip
