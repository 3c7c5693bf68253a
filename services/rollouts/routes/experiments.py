"""The experiments' API: create, list, look at, stop and re-weight experiments.

Writes (create, stop, weights) need the admin token exactly as the rollouts' writes do; reads
are open. A refused request changes nothing and says why: 404 unknown experiment, 409 a
conflict (the rollout, the experiment or the layer in the way), 422 a plan or an arm that
does not fit (the field), 503 when MLflow cannot be reached to check the arms' models.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from services.rollouts.controller import Refusal
from services.rollouts.experiments.book import ExperimentBook
from services.rollouts.experiments.plan import ExperimentPlan
from services.rollouts.experiments.report import render
from services.rollouts.experiments.store import Experiment, ExperimentDecision
from services.rollouts.routes.rollouts import Action, _refused
from shared.platform.auth import ADMIN, ADMIN_RESPONSES

router = APIRouter(tags=["experiments"])


class Weights(BaseModel):
    """Body of ``PATCH /v1/experiments/{id}/weights``: every arm's new weight."""

    weights: dict[str, float] = Field(description="arm name -> weight; they sum to 1")


def _book(request: Request) -> ExperimentBook:
    book: ExperimentBook | None = request.app.state.controller.experiments
    assert book is not None, "the controller is built with its experiments"
    return book


def experiment_json(e: Experiment) -> dict[str, Any]:
    """An experiment as the API and the CLI show it (arms resolved, as the gateway gets them)."""
    return {
        "id": e.id,
        "layer": e.plan.layer,
        "kind": e.plan.kind,
        "state": e.state,
        "traffic": e.plan.traffic,
        "range": list(e.range) if e.range else None,
        "arms": msgspec.to_builtins(e.arms),
        "audience": e.plan.audience,
        "segments": list(e.plan.segments),
        "sticky": e.plan.sticky,
        "start_at": e.plan.start_at,
        "stop_at": e.plan.stop_at,
        "created": e.created,
        "started": e.started,
        "stopped": e.stopped,
        "waiting": e.waiting,
        "stop_reason": e.stop_reason,
        "plan": e.plan.model_dump(),
    }


def decision_json(d: ExperimentDecision) -> dict[str, Any]:
    """One entry of the history."""
    return {"ts": d.ts, "decision": d.decision, "reasons": d.reasons, "details": d.details}


def _unknown(experiment_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"no experiment {experiment_id}"}, status_code=404)


@router.post(
    "/v1/experiments",
    dependencies=ADMIN,
    status_code=201,
    responses={**ADMIN_RESPONSES, 409: {}, 422: {}, 503: {}},
)
async def create_experiment(plan: ExperimentPlan, request: Request) -> Any:
    """Check and store an experiment; it starts now unless ``start_at`` is later."""
    try:
        e = await _book(request).create(plan)
    except Refusal as exc:
        return _refused(exc)
    return JSONResponse(experiment_json(e), status_code=201)


@router.get("/v1/experiments")
async def list_experiments(request: Request, active: bool = False, limit: int = 100) -> Any:
    """Experiments, newest first (``active=true``: scheduled or running only)."""
    rows = _book(request).all(active_only=active, limit=max(1, min(limit, 1000)))
    return {"experiments": [experiment_json(e) for e in rows]}


@router.get("/v1/experiments/{experiment_id}", responses={404: {}})
async def get_experiment(experiment_id: str, request: Request) -> Any:
    """One experiment: its state, its range, its resolved arms."""
    e = _book(request).get(experiment_id)
    return _unknown(experiment_id) if e is None else experiment_json(e)


@router.get("/v1/experiments/{experiment_id}/history", responses={404: {}})
async def experiment_history(experiment_id: str, request: Request) -> Any:
    """Every decision of an experiment with its reasons, oldest first."""
    book = _book(request)
    if book.get(experiment_id) is None:
        return _unknown(experiment_id)
    return {
        "id": experiment_id,
        "decisions": [decision_json(d) for d in book.history(experiment_id)],
    }


@router.post(
    "/v1/experiments/{experiment_id}/stop",
    dependencies=ADMIN,
    responses={**ADMIN_RESPONSES, 404: {}, 409: {}},
)
async def stop_experiment(experiment_id: str, request: Request, body: Action | None = None) -> Any:
    """Stop the experiment: gone from the assignments, its range free again."""
    try:
        e = await _book(request).stop(experiment_id, body.reason if body is not None else "")
    except Refusal as exc:
        return _refused(exc)
    return experiment_json(e)


@router.patch(
    "/v1/experiments/{experiment_id}/weights",
    dependencies=ADMIN,
    responses={**ADMIN_RESPONSES, 404: {}, 409: {}, 422: {}},
)
async def change_weights(experiment_id: str, body: Weights, request: Request) -> Any:
    """New arm weights (same range and salt; sticky users keep their arm)."""
    try:
        e = await _book(request).set_weights(experiment_id, body.weights)
    except Refusal as exc:
        return _refused(exc)
    return experiment_json(e)


@router.get("/v1/experiments/{experiment_id}/analysis", responses={404: {}})
async def experiment_analysis(experiment_id: str, request: Request, looks: int = 200) -> Any:
    """The last look's figures and the effect over the looks (oldest first)."""
    book = _book(request)
    if book.get(experiment_id) is None:
        return _unknown(experiment_id)
    if book.watch is None:
        return JSONResponse({"detail": "this controller does not analyse experiments"}, 503)
    history = book.watch.store.looks(experiment_id, max(1, min(looks, 5000)))
    return {
        "id": experiment_id,
        "latest": history[-1] if history else None,
        "looks": history,
    }


@router.get("/v1/experiments/{experiment_id}/report", responses={404: {}})
async def experiment_report(experiment_id: str, request: Request) -> Any:
    """The experiment's page: the effect and its always-valid interval over time, the arms."""
    book = _book(request)
    e = book.get(experiment_id)
    if e is None:
        return _unknown(experiment_id)
    history = book.watch.store.looks(experiment_id) if book.watch is not None else []
    return HTMLResponse(render(experiment_json(e), history))
