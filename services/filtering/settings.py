"""Settings of the filtering service (environment prefix CASCADE_FILTERING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import RedisUrl, ServiceSettings, redis_url_field


class Settings(ServiceSettings):
    """Removes seen, restricted, blocked and duplicate candidates."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_FILTERING_", populate_by_name=True)

    service_name: str = "filtering"
    port: int = Field(default=8004, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field("filtering")
