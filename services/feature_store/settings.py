"""Settings of the feature_store service (environment prefix CASCADE_FEATURE_STORE_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import RedisUrl, ServiceSettings, redis_url_field


class Settings(ServiceSettings):
    """Online feature reads from Redis."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_FEATURE_STORE_", populate_by_name=True)

    service_name: str = "feature_store"
    port: int = Field(default=8002, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field("feature_store")
