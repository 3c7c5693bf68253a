"""The split: which variant a request runs under, given the rollouts in force.

Only requests that did not name a variant take part (an explicit ``?variant=`` is a person
asking for exactly that variant). For each active rollout the user's arm comes from the
salted hash of the user id (``Assignment.arm``); the served variant is production with the
slots of every rollout whose canary arm the user is in moved to the ``canary`` alias. One
rollout per model slot at most (the controller refuses a second), so those slots never clash.
The shadow, when this request is drawn for it, is the served variant with the shadowing
rollouts' slots at the ``shadow`` alias (so the diff isolates those slots), run after the
answer has gone out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.gateway.experiments.assignment import ExperimentAssignment
from services.gateway.rollouts.assignment import (
    CANARY_ALIAS,
    SHADOW_ALIAS,
    Assignment,
    Assignments,
)
from shared.pipeline.context import VariantSpec


@dataclass(frozen=True)
class Decision:
    """What one request runs under, and why."""

    variant: VariantSpec
    arms: dict[str, str] = field(default_factory=dict)  # rollout id -> production | canary
    canary: tuple[Assignment, ...] = ()  # rollouts whose canary serves this request
    shadow: VariantSpec | None = None
    shadowed_by: tuple[Assignment, ...] = ()  # rollouts the shadow run is compared for
    rollouts: tuple[Assignment, ...] = ()  # every rollout in force when it was decided
    endpoints: dict[str, str] = field(default_factory=dict)  # stage -> the canary's URL
    # Running experiments: their arms are decided once the user is read (steps/experiments).
    experiments: tuple[ExperimentAssignment, ...] = ()

    @property
    def canary_slots(self) -> tuple[str, ...]:
        """The model slots running a canary in this request."""
        return tuple(slot for a in self.canary for slot in a.slots)


def decide(assignments: Assignments, user_id: str, request_id: str,
           base: VariantSpec) -> Decision:  # fmt: skip
    """The variant of one request under ``assignments`` (``base`` when none applies)."""
    if not assignments.rollouts:
        return Decision(base, experiments=assignments.experiments)
    arms: dict[str, str] = {}
    canary: list[Assignment] = []
    shadowed: list[Assignment] = []
    for a in assignments.rollouts:
        arm = a.arm(user_id)
        arms[a.rollout_id] = arm
        if arm == CANARY_ALIAS:
            canary.append(a)
        elif a.shadows(request_id):  # a canary user's request is not shadowed as well
            shadowed.append(a)
    variant = base
    for a in canary:
        variant = a.variant(CANARY_ALIAS, variant)
    shadow = None
    if shadowed:
        shadow = variant
        for a in shadowed:
            shadow = a.variant(SHADOW_ALIAS, shadow)
    endpoints = {stage: url for a in canary for stage, url in a.endpoints.items()}
    return Decision(variant, arms, tuple(canary), shadow, tuple(shadowed), assignments.rollouts,
                    endpoints, assignments.experiments)  # fmt: skip
