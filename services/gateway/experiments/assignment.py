"""ExperimentAssignment: what the gateway must know of a running experiment to assign users.

Layers make experiments orthogonal. A user's place in a layer is ``unit_interval("layer/" +
layer, user_id)``: the same in every gateway, and independent between layers (different salts),
so a user's arms in two layers are independent. The experiments of one layer own disjoint
slices of that interval (``range``), so within a layer a user is in at most one experiment.
Inside its slice, the arm comes from a second hash salted by the experiment (``salt``) against
the cumulative arm weights: the arm does not depend on where the slice sits.

Changing weights would move users between arms; a sticky experiment does not: the arm a user
was first given is remembered with the user's state in the online store (``UserState.arms``)
and wins over the hash while it names an arm of the experiment. Only users not yet assigned
see the new weights.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from services.gateway.split_hash import Slot, unit_interval
from shared.pipeline.context import VariantSpec

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Weight = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Bound = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Audience = Literal["all", "new", "returning"]
Kind = Literal["ab", "interleaving"]
INTERLEAVED = "interleaved"  # the arm label of an interleaving experiment's users


def layer_position(layer: str, user_id: str) -> float:
    """Where ``user_id`` sits in ``layer``'s [0, 1) (independent between layers)."""
    return unit_interval(f"layer/{layer}", user_id)


class ArmSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One arm: its weight and what it changes relative to production."""

    name: Name
    weight: Weight
    models: dict[Slot, str] = {}  # model slot -> registry alias
    knobs: dict[str, dict[str, Any]] = {}  # component -> knob overrides

    def variant(self, experiment_id: str, base: VariantSpec) -> VariantSpec:
        """``base`` with this arm's models and knobs on top."""
        if not self.models and not self.knobs:
            return base
        knobs = {**base.knobs}
        for component, overrides in self.knobs.items():
            knobs[component] = {**knobs.get(component, {}), **overrides}
        name = f"{experiment_id}-{self.name}"[:64]
        models: dict[str, str] = {**base.models}
        for slot, alias in self.models.items():
            models[slot] = alias
        return VariantSpec(name=name, models=models, knobs=knobs)


class ExperimentAssignment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One running experiment as the gateway applies it.

    ``kind`` interleaving: exactly two arms that differ in their ranker; every user of the
    experiment gets one list drafted from both rankers' orders (team-draft), each item marked
    with the arm that contributed it, and the user's arm label is ``interleaved``.
    """

    experiment_id: Name
    layer: Name
    arms: tuple[ArmSpec, ...]
    salt: str
    kind: Kind = "ab"
    range: tuple[Bound, Bound] = (0.0, 1.0)  # this experiment's slice of the layer
    audience: Audience = "all"  # new: users without history; returning: with history
    segments: tuple[str, ...] = ()  # the user segments it applies to (empty: every segment)
    sticky: bool = True

    def claims(self, user_id: str) -> bool:
        """Whether ``user_id`` falls in this experiment's slice of its layer."""
        lo, hi = self.range
        return lo <= layer_position(self.layer, user_id) < hi

    def targets(self, returning: bool, segment: str) -> bool:
        """Whether a user with this history and segment is in the experiment's audience."""
        if self.segments and segment not in self.segments:
            return False
        if self.audience == "all":
            return True
        return returning == (self.audience == "returning")

    def arm(self, user_id: str, remembered: str | None = None) -> ArmSpec:
        """The user's arm: the remembered one while it exists, else by hash and weight."""
        if remembered is not None and self.sticky:
            for a in self.arms:
                if a.name == remembered:
                    return a
        u = unit_interval(f"{self.salt}/arm", user_id) * sum(a.weight for a in self.arms)
        edge = 0.0
        for a in self.arms:
            edge += a.weight
            if u < edge:
                return a
        return self.arms[-1]

    def model_slots(self) -> set[str]:
        """The model slots any arm changes (a rollout of the same slot excludes the user)."""
        return {slot for a in self.arms for slot in a.models}
