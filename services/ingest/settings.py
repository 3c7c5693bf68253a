"""Settings of the feature ingest worker (environment prefix CASCADE_INGEST_)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.events import DEFAULT_MAX_FUTURE_S
from shared.online_store.config import StoreConfig
from shared.platform.settings import (
    KafkaSettings,
    RedisSettings,
    ServiceSettings,
    platform,
)
from shared.stream import topics
from shared.stream.settings import ConsumerGroupSettings


class StoreSettings(BaseModel):
    """Platform-wide store knobs: the writer and every reader must agree on them."""

    dedupe_ttl_s: int = platform(StoreConfig.dedupe_ttl_s, ge=60, description="event-id memory")
    history_cap: int = platform(
        StoreConfig.history_cap, ge=1, le=10_000, description="recent items kept"
    )
    impressions_ttl_s: int = platform(
        StoreConfig.impressions_ttl_s, ge=60, description="fatigue counts lifetime"
    )
    trending_half_life_s: float = platform(
        StoreConfig.trending_half_life_s, gt=0, description="trending decay"
    )
    segment_half_life_s: float = platform(
        StoreConfig.segment_half_life_s, gt=0, description="segment popularity decay"
    )


class Settings(ServiceSettings, RedisSettings, KafkaSettings, ConsumerGroupSettings, StoreSettings):
    """Consumer group on the events topic; one atomic Redis script call per batch."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_INGEST_", populate_by_name=True)

    service_name: str = "ingest"
    port: int = Field(default=8007, ge=1, le=65535)
    topic: str = Field(default=topics.EVENTS, min_length=1)
    dlq_topic: str = Field(default=topics.EVENTS_DLQ, min_length=1)
    group_id: str = Field(default="feature-ingest", min_length=1)
    batch_size: int = Field(default=2000, ge=1, le=100_000, description="max records per batch")
    poll_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    overlap_writes: bool = Field(
        default=True,
        description="write a batch to Redis on a second thread while the next one is prepared",
    )
    # kafka-python verifies CRCs in pure Python (about a third of the worker's CPU) unless the
    # crc32c package is installed; TCP already checksums loopback/LAN traffic.
    check_crcs: bool = Field(default=False, description="verify record CRCs on consume")
    # A fetch waits up to this long for data; Tansu answers only then even when data is there,
    # so it bounds freshness (kafka-python's default of 500 ms alone added ~250 ms at p50).
    fetch_max_wait_ms: int = Field(default=50, ge=0, le=10_000, description="fetch long-poll")
    lag_interval_s: float = Field(default=1.0, gt=0, description="lag gauge refresh period")
    dlq_timeout_s: float = Field(default=5.0, gt=0, description="wait for the DLQ's acks")
    max_future_s: float = Field(
        default=DEFAULT_MAX_FUTURE_S,
        ge=0,
        description="dead-letter events timestamped further ahead of this clock (as the API does)",
    )

    def store_config(self) -> StoreConfig:
        """The store knobs as the writer takes them."""
        return StoreConfig(
            dedupe_ttl_s=self.dedupe_ttl_s,
            history_cap=self.history_cap,
            impressions_ttl_s=self.impressions_ttl_s,
            trending_half_life_s=self.trending_half_life_s,
            segment_half_life_s=self.segment_half_life_s,
        )
