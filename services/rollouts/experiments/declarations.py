"""The gateway's declarations an experiment is checked against: its variants and knob table.

Read from the same files the gateway reads (the variants file, the latency budget, the
plugins), so an arm the controller accepts is an arm every gateway can run. An arm naming a
variant is resolved here to that variant's models and knobs: the gateway applies what was
checked, whatever the variants file says later.
"""

from __future__ import annotations

from typing import Any, cast

from services.gateway.experiments.assignment import ArmSpec
from services.gateway.split_hash import Slot
from services.gateway.variants import VariantRegistry
from services.rollouts.experiments.plan import MODEL_SLOTS, ArmPlan, ExperimentPlan
from shared.pipeline.context import VariantSpec
from shared.pipeline.knobs import KnobError, KnobTable


class PlanRefused(ValueError):
    """An experiment that does not fit the gateway's declarations; the message names the field."""


class GatewayDeclarations:
    """The variants and knobs every gateway declares (checked arms are resolved against them)."""

    def __init__(self, variants: VariantRegistry) -> None:
        self.variants = variants

    @classmethod
    def load(
        cls, variants_path: str | None, budget_path: str | None, plugins: str = ""
    ) -> GatewayDeclarations:
        """The gateway's knob table and variants, built exactly as the gateway builds them."""
        # Imported here: the stage declarations pull in every stage's component modules,
        # which only the controller's start needs (the CLI imports this package too).
        from services.gateway.pipeline import GATEWAY_KNOBS
        from services.gateway.stages import declared_stages
        from shared.pipeline.budget import load_budget

        stages = declared_stages(load_budget(budget_path), plugins)
        knobs = KnobTable([*stages.components(), *GATEWAY_KNOBS])
        return cls(VariantRegistry.from_file(variants_path, knobs))

    def resolve(self, plan: ExperimentPlan) -> tuple[ArmSpec, ...]:
        """Each arm as the gateway applies it (PlanRefused naming the arm's field)."""
        arms = tuple(self._arm(i, arm) for i, arm in enumerate(plan.arms))
        if plan.kind == "interleaving":
            check_interleaving(arms)
        return arms

    def _arm(self, i: int, arm: ArmPlan) -> ArmSpec:
        models: dict[str, str] = dict(arm.models)
        knobs: dict[str, dict[str, Any]] = {c: dict(k) for c, k in arm.knobs.items()}
        if arm.variant is not None:
            try:
                declared = self.variants.get(arm.variant)
            except KeyError:
                raise PlanRefused(
                    f"arms[{i}].variant: no variant {arm.variant!r} in the gateway's variants "
                    f"file (declared: {', '.join(self.variants.names())})"
                ) from None
            models, knobs = dict(declared.models), {c: dict(k) for c, k in declared.knobs.items()}
        unknown = sorted(set(models) - set(MODEL_SLOTS))
        if unknown:  # a variant file can only hold known slots; kept for safety
            raise PlanRefused(f"arms[{i}].models.{unknown[0]}: not a model slot")
        try:
            self.variants.knobs.check(VariantSpec(name="experiment-arm", knobs=knobs))
        except KnobError as exc:
            where = ".".join(exc.loc[2:])  # loc is ("variant", "knobs", component)
            raise PlanRefused(f"arms[{i}].knobs.{where}: {exc.msg}") from None
        return ArmSpec(
            name=arm.name, weight=arm.weight, models=cast(dict[Slot, str], models), knobs=knobs
        )


def check_interleaving(arms: tuple[ArmSpec, ...]) -> None:
    """Two arms that differ in their ranker and in nothing else (PlanRefused otherwise).

    Team-draft interleaving merges two rankings of the same candidates: anything else that
    differed (retrieval, a re-ranking knob) would change the candidates or the final order,
    and the comparison would no longer be of the rankers."""
    if len(arms) != 2:
        raise PlanRefused(f"arms: an interleaving experiment has exactly two arms, got {len(arms)}")
    a, b = arms
    if a.knobs != b.knobs:
        raise PlanRefused(
            f"arms: an interleaving experiment's arms must differ in models.ranker only; "
            f"{a.name} and {b.name} also differ in knobs"
        )
    ma, mb = _models(a), _models(b)
    others = sorted(s for s in MODEL_SLOTS if s != "ranker" and ma[s] != mb[s])
    if others:
        raise PlanRefused(
            f"arms: an interleaving experiment's arms must differ in models.ranker only; "
            f"{a.name} and {b.name} also differ in models.{others[0]}"
        )
    if ma["ranker"] == mb["ranker"]:
        raise PlanRefused(
            f"arms: an interleaving experiment's arms must differ in models.ranker; both "
            f"{a.name} and {b.name} rank with @{ma['ranker']}"
        )


def _models(arm: ArmSpec) -> dict[str, str]:
    """The alias of every slot (production where the arm names none)."""
    return {slot: arm.models.get(slot, "production") for slot in MODEL_SLOTS}  # type: ignore[call-overload]
