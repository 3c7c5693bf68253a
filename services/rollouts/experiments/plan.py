"""An experiment declared as data: its layer, its share of that layer, its arms, its audience.

A plan is checked in two passes. This module checks what the plan alone can tell (weights
that sum to 1, unique arm names, an interleaving experiment's shape, times in order, known
metric names); ``declarations.py`` checks the arms against the gateway's variants and knobs,
and ``aliases.py`` their models against MLflow. Each refusal names the field.

Example (YAML, as ``experiment start --file`` or the declared file takes it)::

    name: diversity-mmr
    layer: reranking
    traffic: 0.5
    arms:
      - {name: control, weight: 0.5}
      - {name: diverse, weight: 0.5, variant: diverse}
    metrics: {primary: clicks_per_user, guardrails: [latency_p99]}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.gateway.split_hash import Slot

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
Name = Annotated[str, Field(pattern=ID_PATTERN)]
Alias = Annotated[str, Field(pattern=ID_PATTERN)]
Short = Annotated[str, Field(min_length=1, max_length=64)]
MODEL_SLOTS: tuple[str, ...] = get_args(Slot)
MetricName = Literal[
    "ctr", "clicks_per_user", "likes_per_user", "watch_s_per_user", "coverage", "diversity",
    "latency_p99",
]  # fmt: skip
WEIGHT_TOLERANCE = 1e-6


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArmPlan(_Strict):
    """One arm: its weight and what it changes (a declared variant, or inline models/knobs).

    An arm that names nothing is production."""

    name: Name
    weight: float = Field(gt=0, le=1, description="share of the experiment's users")
    variant: Name | None = Field(
        None, description="a variant of the gateway's variants file (config/variants.yaml)"
    )
    models: dict[str, Alias] = Field(
        default_factory=dict, description="model slot (retrieval, ranker) -> registry alias"
    )
    knobs: dict[Short, dict[Short, Any]] = Field(
        default_factory=dict, description="component -> knob overrides"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ArmPlan:
        if self.variant is not None and (self.models or self.knobs):
            raise ValueError(
                f"arm {self.name}: name a variant or give models/knobs inline, not both"
            )
        unknown = sorted(set(self.models) - set(MODEL_SLOTS))
        if unknown:
            raise ValueError(
                f"arm {self.name}: models.{unknown[0]} is not a model slot "
                f"(slots: {', '.join(MODEL_SLOTS)})"
            )
        return self

    @property
    def is_production(self) -> bool:
        """Changes nothing: the control arm."""
        return self.variant in (None, "production") and not self.models and not self.knobs


class ExperimentMetrics(_Strict):
    """What the analysis will read (names from a fixed set: docs/experiments.md)."""

    primary: MetricName = "clicks_per_user"
    secondary: tuple[MetricName, ...] = ()
    guardrails: tuple[MetricName, ...] = ()


class ExperimentPlan(_Strict):
    """An A/B or interleaving experiment: ``traffic`` of ``layer``'s users split over ``arms``."""

    name: Name = Field(description="the experiment's id (and hash salt): never reused")
    layer: Name = Field("default", description="experiments of one layer never share a user")
    kind: Literal["ab", "interleaving"] = "ab"
    traffic: float = Field(1.0, gt=0, le=1, description="the experiment's share of its layer")
    arms: tuple[ArmPlan, ...] = Field(min_length=2, max_length=20)
    audience: Literal["all", "new", "returning"] = "all"
    segments: tuple[Short, ...] = Field((), max_length=50, description="empty: every segment")
    start_at: float | None = Field(None, gt=0, description="epoch seconds (None: now)")
    stop_at: float | None = Field(None, gt=0, description="epoch seconds (None: until stopped)")
    sticky: bool = Field(True, description="a user keeps the first arm given when weights change")
    metrics: ExperimentMetrics = ExperimentMetrics()
    description: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentPlan:
        names = [a.name for a in self.arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arms: arm name {repeated[0]!r} is used twice")
        check_weights({a.name: a.weight for a in self.arms})
        if self.start_at is not None and self.stop_at is not None:
            if self.stop_at <= self.start_at:
                raise ValueError(f"stop_at {self.stop_at} is not after start_at {self.start_at}")
        if self.kind == "interleaving":
            if len(self.arms) != 2:
                raise ValueError(
                    f"arms: an interleaving experiment has exactly two arms, got {len(self.arms)}"
                )
            # Every user sees both rankers' items drafted into one list: weights mean nothing,
            # and 0.5/0.5 is required so that a plan does not read as if they did.
            if any(abs(a.weight - 0.5) > WEIGHT_TOLERANCE for a in self.arms):
                raise ValueError(
                    "arms: an interleaving experiment's weights must be 0.5/0.5 "
                    "(every user sees both arms)"
                )
        return self

    def with_weights(self, weights: dict[str, float]) -> ExperimentPlan:
        """A copy with new arm weights (already checked by :func:`check_weights`)."""
        arms = tuple(a.model_copy(update={"weight": weights[a.name]}) for a in self.arms)
        return self.model_copy(update={"arms": arms})


def check_weights(weights: dict[str, float], where: str = "arms") -> None:
    """Each weight in (0, 1] and the sum 1 within 1e-6 (ValueError naming ``where``)."""
    for name, w in weights.items():
        if not 0 < w <= 1:
            raise ValueError(f"{where}: arm {name} has weight {w}, outside (0, 1]")
    total = sum(weights.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        shown = ", ".join(f"{n} {w:g}" for n, w in weights.items())
        raise ValueError(f"{where}: weights sum to {total:.6g}, not 1 ({shown})")
