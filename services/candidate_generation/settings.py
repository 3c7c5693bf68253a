"""Settings of the candidate_generation service (env prefix CASCADE_CANDIDATE_GENERATION_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import RedisUrl, ServiceSettings, redis_url_field


class Settings(ServiceSettings):
    """Candidate sources: two-tower + ANN, trending, item-to-item, fresh."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_CANDIDATE_GENERATION_", populate_by_name=True)

    service_name: str = "candidate_generation"
    port: int = Field(default=8003, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field("candidate_generation")
