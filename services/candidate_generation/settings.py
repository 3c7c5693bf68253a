"""Settings of the candidate_generation service (env prefix CASCADE_CANDIDATE_GENERATION_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.models.item_indexer import IndexSyncSettings
from shared.models.settings import ModelSettings
from shared.platform.settings import (
    BudgetSettings,
    ReadCacheSettings,
    RedisSettings,
    ServiceSettings,
)


class Settings(
    ServiceSettings, RedisSettings, ModelSettings, BudgetSettings, ReadCacheSettings,
    IndexSyncSettings,
):  # fmt: skip
    """Candidate sources: two-tower + ANN, item-to-item, fresh, segment-popular, trending."""

    model_config = SettingsConfigDict(
        env_prefix="CASCADE_CANDIDATE_GENERATION_", populate_by_name=True
    )

    service_name: str = "candidate_generation"
    port: int = Field(default=8003, ge=1, le=65535)
    disabled_sources: str = Field(default="", description="comma-separated kill switches")

    def disabled(self) -> frozenset[str]:
        """Names of switched-off sources."""
        return frozenset(s.strip() for s in self.disabled_sources.split(",") if s.strip())
