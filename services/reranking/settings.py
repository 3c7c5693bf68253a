"""Settings of the reranking service (environment prefix CASCADE_RERANKING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.model_loading import (
    model_alias_field,
    model_cache_field,
    model_poll_field,
    models_dir_field,
)
from shared.pipeline.item_indexer import index_sync_field, index_sync_lookback_field
from shared.settings import RedisUrl, ServiceSettings, mlflow_field, redis_url_field


class Settings(ServiceSettings):
    """Diversity, freshness, exploration and fatigue re-ranking.

    The gateway sends impression counts with the request; item embeddings (for MMR) come from
    the item index model. Redis is read only to embed catalog additions (items added at run
    time) with the item tower; without it re-ranking goes on, new items compared by genre only.
    """

    model_config = SettingsConfigDict(env_prefix="CASCADE_RERANKING_", populate_by_name=True)

    service_name: str = "reranking"
    port: int = Field(default=8006, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field("reranking")
    index_sync_s: float = index_sync_field()
    index_sync_lookback_s: float = index_sync_lookback_field()
    mlflow_uri: str = mlflow_field("reranking")
    models_dir: str | None = models_dir_field("reranking")
    model_alias: str = model_alias_field("reranking")
    model_poll_s: float = model_poll_field("reranking")
    model_cache_dir: str = model_cache_field("reranking")
    disabled_rerankers: str = Field(default="", description="comma-separated kill switches")

    def disabled(self) -> frozenset[str]:
        """Names of switched-off re-rankers."""
        return frozenset(s.strip() for s in self.disabled_rerankers.split(",") if s.strip())
