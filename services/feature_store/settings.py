"""Settings of the feature_store service (environment prefix CASCADE_FEATURE_STORE_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.ingest.settings import StoreSettings
from shared.online_store.config import StoreConfig
from shared.platform.settings import RedisSettings, ServiceSettings


class Settings(ServiceSettings, RedisSettings, StoreSettings):
    """Online feature reads from Redis, and catalog writes."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_FEATURE_STORE_", populate_by_name=True)

    service_name: str = "feature_store"
    port: int = Field(default=8002, ge=1, le=65535)
    max_items: int = Field(default=2000, ge=1, le=100_000, description="item ids per request")
    bootstrap_data: str | None = Field(
        default=None,
        description="MovieLens folder the store is re-bootstrapped from when its catalog is gone "
        "(unset: never; docs/faults.md)",
    )
    bootstrap_check_s: float = Field(default=5.0, gt=0, le=3600, description="how often")

    def store_config(self) -> StoreConfig:
        """The store knobs the reader needs."""
        return StoreConfig(
            history_cap=self.history_cap,
            trending_half_life_s=self.trending_half_life_s,
            segment_half_life_s=self.segment_half_life_s,
        )
