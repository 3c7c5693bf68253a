"""Settings of the candidate_generation service (env prefix CASCADE_CANDIDATE_GENERATION_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.model_loading import (
    model_alias_field,
    model_cache_field,
    model_poll_field,
    models_dir_field,
)
from shared.online_store.read_cache import read_cache_field
from shared.pipeline.budget import latency_budget_field
from shared.pipeline.item_indexer import index_sync_field, index_sync_lookback_field
from shared.settings import RedisUrl, ServiceSettings, mlflow_field, redis_url_field

_NAME = "candidate_generation"


class Settings(ServiceSettings):
    """Candidate sources: two-tower + ANN, item-to-item, fresh, segment-popular, trending."""

    model_config = SettingsConfigDict(
        env_prefix="CASCADE_CANDIDATE_GENERATION_", populate_by_name=True
    )

    service_name: str = _NAME
    port: int = Field(default=8003, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field(_NAME)
    mlflow_uri: str = mlflow_field(_NAME)
    models_dir: str | None = models_dir_field(_NAME)
    model_alias: str = model_alias_field(_NAME)
    model_poll_s: float = model_poll_field(_NAME)
    model_cache_dir: str = model_cache_field(_NAME)
    latency_budget: str | None = latency_budget_field(_NAME)
    disabled_sources: str = Field(default="", description="comma-separated kill switches")
    read_cache_s: float = read_cache_field()
    index_sync_s: float = index_sync_field()
    index_sync_lookback_s: float = index_sync_lookback_field()

    def disabled(self) -> frozenset[str]:
        """Names of switched-off sources."""
        return frozenset(s.strip() for s in self.disabled_sources.split(",") if s.strip())
