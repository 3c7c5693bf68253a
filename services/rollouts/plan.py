"""A rollout declared as data: which model, which candidate version, which steps, which analysis.

A plan is checked when it is submitted, before anything in the registry moves: an unknown
model, a step plan that cannot keep users in their arm (a canary share that shrinks), a
shadow after a canary, or a threshold out of range is a 422 naming the field. Every default
below is documented in docs/rollouts.md with the reason for its value.

Example (JSON, as ``POST /v1/rollouts`` takes it)::

    {"model": "ranker", "candidate": {"ranker": "7"},
     "steps": [{"kind": "shadow", "share": 0.2, "duration_s": 300, "min_sample": 500},
               {"kind": "canary", "share": 0.05, "duration_s": 600, "min_sample": 200},
               {"kind": "canary", "share": 0.25, "duration_s": 600, "min_sample": 500},
               {"kind": "canary", "share": 0.5, "duration_s": 600, "min_sample": 1000}]}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.platform.settings import HttpUrl

ModelKind = Literal["ranker", "retrieval", "bundle"]
# The registry parts a rollout of each model moves, and the serving slots they fill.
PARTS_OF: dict[str, tuple[str, ...]] = {
    "ranker": ("ranker",),
    "retrieval": ("user_tower", "item_index"),
    "bundle": ("user_tower", "item_index", "ranker"),
}
SLOTS_OF: dict[str, tuple[str, ...]] = {
    "ranker": ("ranker",),
    "retrieval": ("retrieval",),
    "bundle": ("retrieval", "ranker"),
}
SLOT_OF_PART = {"user_tower": "retrieval", "item_index": "retrieval", "ranker": "ranker"}
OnlineMetric = Literal["clicks_per_request", "ctr", "likes_per_request", "watch_s_per_request"]
Version = Annotated[str, Field(pattern=r"^[0-9]{1,9}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Guardrails(_Strict):
    """Limits on the canary arm against production, judged at every look."""

    max_error_rate: float = Field(
        0.01, ge=0, le=1, description="canary errors (production answered instead) per request"
    )
    max_degraded_increase: float = Field(
        0.02, ge=0, le=1, description="canary degraded share minus production's"
    )
    max_p99_ratio: float = Field(1.25, ge=1, le=100, description="canary p99 / production p99")
    p99_slack_ms: float = Field(
        5.0, ge=0, le=10_000, description="added to the p99 limit: noise at millisecond scale"
    )
    min_requests: int = Field(
        100, ge=1, description="canary requests before a guardrail can fail the step"
    )
    p99_min_requests: int = Field(
        500, ge=1, description="requests per arm before the p99 guardrail judges (a p99 of "
        "fewer rests on a handful of the slowest requests)",
    )  # fmt: skip


class ShadowGates(_Strict):
    """What a shadow step must show before the canary starts."""

    max_error_rate: float = Field(
        0.02, ge=0, le=1, description="shadow runs that failed, beyond production's degraded share"
    )
    min_final_overlap: float | None = Field(
        None, ge=0, le=1, description="mean overlap@k of the final lists (None: not gated)"
    )
    min_candidate_recall: float | None = Field(
        None, ge=0, le=1, description="mean recall of production's candidates (None: not gated)"
    )
    off_policy_not_worse: bool = Field(
        False, description="fail when the off-policy estimate shows the candidate's pick at "
        "production's exploration slots clicked less than production's (a ranker's shadow)",
    )  # fmt: skip


class Analysis(_Strict):
    """How each step is judged (docs/rollouts.md, docs/statistics.md)."""

    metric: OnlineMetric = Field(
        "clicks_per_request", description="the online metric compared by arm (users are units)"
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="sequential test's error rate")
    min_units: int = Field(
        100, ge=2, le=1_000_000,
        description="users per arm before the metric test may decide (its normal "
        "approximation needs them)",
    )  # fmt: skip
    srm_p: float = Field(0.001, gt=0, lt=0.1, description="sample-ratio mismatch halts below")
    require: Literal["not_worse", "non_inferior", "better"] = Field(
        "non_inferior",
        description="what a canary step must show at its end to pass: not_worse (not "
        "significantly worse), non_inferior (the interval's low end above -margin) or better",
    )
    margin: float = Field(
        0.1, gt=0, lt=1,
        description="non-inferiority margin: the relative loss of the metric still accepted",
    )  # fmt: skip
    guardrails: Guardrails = Guardrails()
    shadow: ShadowGates = ShadowGates()


class Step(_Strict):
    """One step: a shadow share of requests or a canary share of users, for a while."""

    kind: Literal["shadow", "canary"]
    share: float = Field(gt=0, lt=1, description="shadow: of requests; canary: of users")
    duration_s: float = Field(gt=0, le=30 * 86400, description="how long the step runs")
    min_sample: int = Field(
        100, ge=1, description="shadow: compared runs; canary: users per arm, before passing"
    )
    on_inconclusive: Literal["hold", "extend", "rollback"] = Field(
        "extend", description="at the end without enough sample or evidence"
    )
    max_extensions: int = Field(2, ge=0, le=20, description="'extend' this many times, then hold")


DEFAULT_STEPS = (
    Step(kind="shadow", share=0.2, duration_s=300, min_sample=500),
    Step(kind="canary", share=0.05, duration_s=600, min_sample=200),
    Step(kind="canary", share=0.25, duration_s=600, min_sample=500),
    Step(kind="canary", share=0.5, duration_s=600, min_sample=1000),
)


class Plan(_Strict):
    """A rollout of ``candidate`` (one version per registry part of ``model``)."""

    model: ModelKind
    candidate: dict[str, Version] = Field(
        description="registry version per part, e.g. {'ranker': '7'}; "
        "retrieval needs user_tower and item_index from the same training run"
    )
    steps: tuple[Step, ...] = Field(DEFAULT_STEPS, min_length=1, max_length=20)
    analysis: Analysis = Analysis()
    endpoints: dict[Literal["candidates", "filtering", "ranking", "reranking"], HttpUrl] = Field(
        default_factory=dict,
        description="stages the canary arm calls at another URL: a canary deployment of the "
        "service (new code, or its own processes); production keeps the usual ones",
    )
    auto_promote: bool = Field(
        True, description="promote when the last step passes (False: hold for a person)"
    )
    description: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        wanted = set(PARTS_OF[self.model])
        if set(self.candidate) != wanted:
            raise ValueError(
                f"candidate must name exactly the parts of a {self.model} rollout "
                f"({', '.join(sorted(wanted))}), got {', '.join(sorted(self.candidate)) or 'none'}"
            )
        seen_canary = False
        last_share = 0.0
        for i, step in enumerate(self.steps):
            if step.kind == "shadow" and seen_canary:
                raise ValueError(f"steps[{i}]: a shadow step cannot follow a canary step")
            if step.kind == "canary":
                if step.share < last_share:
                    # Sticky arms: a user in the canary at 25% must stay in at the next step.
                    raise ValueError(
                        f"steps[{i}]: canary share {step.share} is below the previous "
                        f"{last_share} (shares only grow, so users keep their arm)"
                    )
                seen_canary, last_share = True, step.share
        return self

    @property
    def parts(self) -> tuple[str, ...]:
        """The registry parts this rollout moves."""
        return PARTS_OF[self.model]

    @property
    def slots(self) -> tuple[str, ...]:
        """The serving slots the candidate fills."""
        return SLOTS_OF[self.model]
