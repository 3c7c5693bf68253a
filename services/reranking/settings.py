"""Settings of the reranking service (environment prefix CASCADE_RERANKING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import RedisUrl, ServiceSettings, redis_url_field


class Settings(ServiceSettings):
    """Diversity, freshness, exploration and fatigue re-ranking."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_RERANKING_", populate_by_name=True)

    service_name: str = "reranking"
    port: int = Field(default=8006, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field("reranking")
