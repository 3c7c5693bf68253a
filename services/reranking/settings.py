"""Settings of the reranking service (environment prefix CASCADE_RERANKING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.models.item_indexer import IndexSyncSettings
from shared.models.settings import ModelSettings
from shared.platform.settings import RedisSettings, ServiceSettings, platform


class Settings(ServiceSettings, ModelSettings, RedisSettings, IndexSyncSettings):
    """Diversity, freshness, exploration and fatigue re-ranking.

    The gateway sends the columns the re-rankers need (score, impressions, added time,
    genres); item embeddings (for MMR) come from the retrieval model's item index. Redis is
    read only to embed catalog additions with the item tower; without it re-ranking goes on,
    new items compared by genre only.
    """

    model_config = SettingsConfigDict(env_prefix="CASCADE_RERANKING_", populate_by_name=True)

    service_name: str = "reranking"
    port: int = Field(default=8006, ge=1, le=65535)
    disabled_rerankers: str = Field(default="", description="comma-separated kill switches")
    plugins: str = platform("", description="extra components, module:Class,...")

    def disabled(self) -> frozenset[str]:
        """Names of switched-off re-rankers."""
        return frozenset(s.strip() for s in self.disabled_rerankers.split(",") if s.strip())
