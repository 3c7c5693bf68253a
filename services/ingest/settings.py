"""Settings of the feature ingest worker (environment prefix CASCADE_INGEST_)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared import topics
from shared.events import DEFAULT_MAX_FUTURE_S
from shared.kafka import group_timing_field
from shared.online_store.config import StoreConfig
from shared.settings import (
    KafkaBootstrap,
    RedisUrl,
    ServiceSettings,
    kafka_field,
    platform_field,
    redis_url_field,
)


def store_fields(service: str) -> dict[str, Any]:
    """Platform-wide store knobs: the writer and every reader must agree on them."""
    d = StoreConfig()
    return {
        "dedupe_ttl_s": platform_field("dedupe_ttl_s", d.dedupe_ttl_s, service, "event-id memory"),
        "history_cap": platform_field("history_cap", d.history_cap, service, "recent items kept"),
        "impressions_ttl_s": platform_field(
            "impressions_ttl_s", d.impressions_ttl_s, service, "fatigue counts lifetime"
        ),
        "trending_half_life_s": platform_field(
            "trending_half_life_s", d.trending_half_life_s, service, "trending decay"
        ),
    }


_STORE = store_fields("ingest")


class Settings(ServiceSettings):
    """Consumer group on the events topic; one atomic Redis script call per batch."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_INGEST_", populate_by_name=True)

    service_name: str = "ingest"
    port: int = Field(default=8007, ge=1, le=65535)
    redis_url: RedisUrl = redis_url_field("ingest")
    kafka_bootstrap: KafkaBootstrap = kafka_field("ingest")
    topic: str = Field(default=topics.EVENTS, min_length=1)
    dlq_topic: str = Field(default=topics.EVENTS_DLQ, min_length=1)
    group_id: str = Field(default="feature-ingest", min_length=1)
    batch_size: int = Field(default=2000, ge=1, le=100_000, description="max records per batch")
    poll_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    # Tansu joins a group in about half the session timeout: tests use 6000/2000.
    session_timeout_ms: int = group_timing_field(
        "ingest", "session_timeout_ms", 10_000, 1000, 300_000
    )
    heartbeat_interval_ms: int = group_timing_field(
        "ingest", "heartbeat_interval_ms", 3000, 100, 100_000
    )
    event_partitions: Annotated[int, Field(ge=1, le=1024)] = platform_field(
        "event_partitions", 6, "ingest", "partitions of the events topic when it is created"
    )
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
    dedupe_ttl_s: Annotated[int, Field(ge=60)] = _STORE["dedupe_ttl_s"]
    history_cap: Annotated[int, Field(ge=1, le=10_000)] = _STORE["history_cap"]
    impressions_ttl_s: Annotated[int, Field(ge=60)] = _STORE["impressions_ttl_s"]
    trending_half_life_s: Annotated[float, Field(gt=0)] = _STORE["trending_half_life_s"]

    def store_config(self) -> StoreConfig:
        """The store knobs as the writer takes them."""
        return StoreConfig(
            dedupe_ttl_s=self.dedupe_ttl_s,
            history_cap=self.history_cap,
            impressions_ttl_s=self.impressions_ttl_s,
            trending_half_life_s=self.trending_half_life_s,
        )
