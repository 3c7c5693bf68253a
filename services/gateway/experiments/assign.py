"""assign: which arm of every running experiment a request is in, and the variant it runs.

Runs once the user's state is read (targeting needs its history and segment; sticky arms are
stored with it). For each experiment, in the order published: the user must fall in its
slice of the layer and in its audience; the arm is the remembered one or the hashed one. An
experiment whose arms change a model slot that a rollout in force claims is skipped for the
request (the controller refuses such a pair; this covers the moment between two polls), and
so is an experiment whose arm would change something an earlier experiment of this request
already changed (two layers must not fight over one knob). Nothing here fails a request: a
skipped experiment is counted with its reason and the request runs without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.gateway.experiments import metrics
from services.gateway.experiments.assignment import (
    INTERLEAVED,
    ArmSpec,
    ExperimentAssignment,
)
from shared.online_store.types import UserState
from shared.pipeline.context import VariantSpec


@dataclass
class Interleave:
    """An interleaving experiment's two rankers for one request (team a, team b)."""

    experiment_id: str
    a: VariantSpec
    b: VariantSpec
    arm_names: tuple[str, str]


@dataclass
class ExperimentDecision:
    """What the experiments decided for one request."""

    variant: VariantSpec
    arms: dict[str, str] = field(default_factory=dict)  # experiment id -> arm (or interleaved)
    remember: dict[str, str] = field(default_factory=dict)  # arms given for the first time
    interleave: Interleave | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # experiment id -> why


def _changes(arm: ArmSpec) -> set[str]:
    return {f"model:{s}" for s in arm.models} | {f"knob:{c}" for c in arm.knobs}


def assign(experiments: tuple[ExperimentAssignment, ...], user: UserState, base: VariantSpec,
           claimed_slots: frozenset[str] = frozenset()) -> ExperimentDecision:  # fmt: skip
    """The experiments' arms of ``user`` and ``base`` with every arm's changes applied."""
    decision = ExperimentDecision(base)
    if not experiments:
        return decision
    returning = bool(user.features.history)
    taken: set[str] = set()  # what earlier experiments of this request changed
    for e in experiments:
        if not e.claims(user.user_id) or not e.targets(returning, user.segment):
            continue
        clash = e.model_slots() & claimed_slots
        if clash:
            decision.skipped[e.experiment_id] = "rollout"
            metrics.SKIPPED.labels(e.experiment_id, "rollout").inc()
            continue
        if e.kind == "interleaving":
            changes = {f"model:{s}" for s in e.model_slots()}
        else:
            arm = e.arm(user.user_id, user.arms.get(e.experiment_id))
            changes = _changes(arm)
        if changes & taken:
            decision.skipped[e.experiment_id] = "overlap"
            metrics.SKIPPED.labels(e.experiment_id, "overlap").inc()
            continue
        taken |= changes
        if e.kind == "interleaving":
            if decision.interleave is not None or len(e.arms) != 2:
                decision.skipped[e.experiment_id] = "interleaving"
                metrics.SKIPPED.labels(e.experiment_id, "interleaving").inc()
                continue
            a, b = e.arms
            decision.interleave = Interleave(
                e.experiment_id, a.variant(e.experiment_id, decision.variant),
                b.variant(e.experiment_id, decision.variant), (a.name, b.name),
            )  # fmt: skip
            decision.arms[e.experiment_id] = INTERLEAVED
            continue
        decision.arms[e.experiment_id] = arm.name
        if e.sticky and user.arms.get(e.experiment_id) != arm.name:
            decision.remember[e.experiment_id] = arm.name
        decision.variant = arm.variant(e.experiment_id, decision.variant)
    if decision.interleave is not None:  # later experiments' changes apply to both teams
        il = decision.interleave
        il.a = _rebase(il.a, decision.variant)
        il.b = _rebase(il.b, decision.variant)
    return decision


def _rebase(team: VariantSpec, served: VariantSpec) -> VariantSpec:
    """``served`` with ``team``'s ranker (the one thing a team changes)."""
    models = {**served.models}
    if "ranker" in team.models:
        models["ranker"] = team.models["ranker"]
    return VariantSpec(name=team.name, models=models, knobs=served.knobs)
