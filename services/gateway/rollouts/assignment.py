"""Assignment: what the gateway must know of an active rollout to split its traffic.

A user's arm comes from a salted hash of the user id, so it is sticky across requests and
across ramp steps: the canary share only grows (5% → 25% → 50%), and a user under the old
threshold stays under the new one. The shadow sample is drawn per request, from the request
id, so a shadow step sees every kind of user.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from services.gateway.experiments.assignment import ExperimentAssignment
from services.gateway.split_hash import Slot, unit_interval
from shared.pipeline.context import VariantSpec

__all__ = [
    "CANARY_ALIAS",
    "SHADOW_ALIAS",
    "Assignment",
    "Assignments",
    "Share",
    "Slot",
    "unit_interval",
]


Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
CANARY_ALIAS = "canary"
SHADOW_ALIAS = "shadow"


class Assignment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One active rollout as the gateway applies it."""

    rollout_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    slots: tuple[Slot, ...]  # the model slots the candidate replaces
    salt: str
    canary_share: Share = 0.0
    shadow_share: Share = 0.0
    # Stage -> base URL the canary arm calls instead (a canary deployment of that service).
    endpoints: dict[str, str] = {}

    def arm(self, user_id: str) -> str:
        """``canary`` for the users under the canary share, else ``production``."""
        if self.canary_share > 0 and unit_interval(self.salt, user_id) < self.canary_share:
            return "canary"
        return "production"

    def shadows(self, request_id: str) -> bool:
        """Whether this request is re-run under the shadow variant."""
        return self.shadow_share > 0 and unit_interval(f"{self.salt}/shadow", request_id) < (
            self.shadow_share
        )

    def variant(self, alias: str, base: VariantSpec) -> VariantSpec:
        """``base`` with this rollout's slots at ``alias`` (the canary's or the shadow's)."""
        models: dict[str, str] = {**base.models, **dict.fromkeys(self.slots, alias)}
        name = f"{self.rollout_id}-{alias}"
        return VariantSpec(name=name[:64], models=models, knobs=base.knobs)


class Assignments(msgspec.Struct, frozen=True):
    """What the controller publishes: every active rollout (at most one per model slot) and
    every running experiment (``services/gateway/experiments``)."""

    rollouts: tuple[Assignment, ...] = ()
    version: int = 0  # moves whenever the controller changes anything
    experiments: tuple[ExperimentAssignment, ...] = ()
