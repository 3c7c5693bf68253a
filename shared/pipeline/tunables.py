"""Tunables: every knob experiments and rollouts may turn, typed and bounded in one place."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Tunables(BaseModel):
    """Per-request knobs (defaults here; a request or an experiment arm may override them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # candidate generation
    ann_top_n: int = Field(default=500, ge=1, le=5000, description="two-tower ANN depth")
    max_candidates: int = Field(
        default=500, ge=10, le=5000, description="cap after merging sources"
    )
    # ranking: final score = sum(w[head] * head); None uses the weights shipped with the model
    blend_weights: dict[str, float] | None = Field(default=None, description="head name -> weight")
    # re-ranking
    rerank_depth: int = Field(default=200, ge=10, le=1000, description="top ranked items re-ranked")
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0, description="relevance vs. novelty")
    mmr_embedding_weight: float = Field(
        default=0.5, ge=0.0, le=1.0, description="share of embedding (vs. genre) similarity"
    )
    genre_cap: int = Field(
        default=5, ge=1, le=1000, description="max items sharing a genre in the list"
    )
    freshness_boost: float = Field(
        default=0.1, ge=0.0, le=1.0, description="boost of a brand-new item"
    )
    freshness_half_life_h: float = Field(default=72.0, gt=0.0, le=24 * 365.0)
    exploration_slots: int = Field(
        default=1, ge=0, le=10, description="list slots open to exploration"
    )
    exploration_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="probability an exploration slot explores"
    )
    exploration_pool: int = Field(
        default=100, ge=1, le=1000, description="ranks below k explored from"
    )
    fatigue_max_impressions: int = Field(
        default=3, ge=1, le=1000, description="an item shown this often is not shown again"
    )
    fatigue_penalty: float = Field(
        default=0.1, ge=0.0, le=1.0, description="score penalty per earlier impression"
    )

    def with_overrides(self, overrides: dict[str, Any] | None) -> Tunables:
        """A copy with some knobs changed (validated against the same bounds)."""
        if not overrides:
            return self
        return Tunables.model_validate({**self.model_dump(), **overrides})


DEFAULT_TUNABLES = Tunables()
