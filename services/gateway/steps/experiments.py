"""Step experiments: the arms of every running experiment, once the user is known.

Runs after the user read (an experiment's audience and a user's remembered arms come with the
user's state) and before any stage, so the arms' variants reach every stage call. It never
fails the request: an experiment that cannot be evaluated is skipped and counted.
"""

from __future__ import annotations

import logging

from services.gateway.experiments import metrics
from services.gateway.experiments.assign import ExperimentDecision, assign
from services.gateway.request_run import RequestRun
from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps

log = logging.getLogger(__name__)


async def assign_arms(req: RequestState, _deps: StepDeps) -> None:
    """Decide the request's experiment arms and run it under their variant."""
    if not req.experiments:
        return
    try:
        decision = assign(req.experiments, req.user_state(), req.variant, req.claimed_slots)
    except Exception:  # a malformed experiment must not cost the user a degraded answer
        await without_experiments(req, _deps, req.run)
        return
    req.experiment = decision
    req.variant = decision.variant


async def without_experiments(req: RequestState, _deps: StepDeps, _run: RequestRun) -> str:
    """Assignment failed (a bug, logged and counted): the request runs without experiments."""
    log.exception("experiment assignment failed: request runs without experiments")
    for e in req.experiments:
        metrics.SKIPPED.labels(e.experiment_id, "error").inc()
    req.experiment = ExperimentDecision(req.variant)
    return "no experiments"
