"""Settings of the feature_store service (environment prefix CASCADE_FEATURE_STORE_)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.ingest.settings import store_fields
from shared.online_store.config import StoreConfig
from shared.settings import RedisUrl, ServiceSettings, redis_url_field

_STORE = store_fields("feature_store")


class Settings(ServiceSettings):
    """Online feature reads from Redis, and catalog writes."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_FEATURE_STORE_", populate_by_name=True)

    service_name: str = "feature_store"
    port: int = Field(default=8002, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field("feature_store")
    max_items: int = Field(default=2000, ge=1, le=100_000, description="item ids per request")
    history_cap: Annotated[int, Field(ge=1, le=10_000)] = _STORE["history_cap"]
    trending_half_life_s: Annotated[float, Field(gt=0)] = _STORE["trending_half_life_s"]

    def store_config(self) -> StoreConfig:
        """The store knobs the reader needs."""
        return StoreConfig(
            history_cap=self.history_cap, trending_half_life_s=self.trending_half_life_s
        )
