"""The latency budget: a deadline per stage of a recommendation request, read from YAML."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_BUDGET_PATH = Path(__file__).resolve().parents[2] / "config" / "latency_budget.yaml"


class StageBudgets(BaseModel):
    """Milliseconds per stage."""

    model_config = ConfigDict(extra="forbid")

    user_features: float = Field(default=10.0, gt=0, le=10_000)
    experiments: float = Field(default=2.0, gt=0, le=10_000)  # assignment: no I/O
    candidates: float = Field(default=20.0, gt=0, le=10_000)
    item_features: float = Field(default=10.0, gt=0, le=10_000)
    filtering: float = Field(default=8.0, gt=0, le=10_000)
    ranking: float = Field(default=12.0, gt=0, le=10_000)
    reranking: float = Field(default=8.0, gt=0, le=10_000)
    fallback: float = Field(default=5.0, gt=0, le=10_000)


class LatencyBudget(BaseModel):
    """Total request budget, per-stage budgets and per-source deadlines (milliseconds)."""

    model_config = ConfigDict(extra="forbid")

    total_ms: float = Field(default=45.0, gt=0, le=60_000)
    stages: StageBudgets = Field(default_factory=StageBudgets)
    sources: dict[str, float] = Field(default_factory=dict)

    def stage_s(self, stage: str) -> float:
        """A stage's budget in seconds."""
        return float(getattr(self.stages, stage)) / 1000.0

    def source_s(self, source: str, default_ms: float = 10.0) -> float:
        """A candidate source's deadline in seconds."""
        return self.sources.get(source, default_ms) / 1000.0

    def scaled(self, factor: float) -> LatencyBudget:
        """Every deadline times ``factor`` (the shadow's: off the latency path, it competes
        with production for the CPU and must not be judged on that contention)."""
        stages = {k: v * factor for k, v in self.stages.model_dump().items()}
        return LatencyBudget(
            total_ms=min(self.total_ms * factor, 60_000),
            stages=StageBudgets(**{k: min(v, 10_000) for k, v in stages.items()}),
            sources={k: v * factor for k, v in self.sources.items()},
        )


class BudgetError(ValueError):
    """The budget file is missing or invalid; the message names the file and the problem."""


def load_budget(path: str | Path | None = None) -> LatencyBudget:
    """Read a latency budget YAML file (the repo's config/latency_budget.yaml by default)."""
    p = Path(path) if path else DEFAULT_BUDGET_PATH
    try:
        data = yaml.safe_load(p.read_text()) or {}
        return LatencyBudget.model_validate(data)
    except FileNotFoundError as exc:
        raise BudgetError(f"latency budget file not found: {p}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise BudgetError(f"latency budget file {p} is invalid: {exc}") from exc
