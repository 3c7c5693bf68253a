"""Settings of the events service (environment prefix CASCADE_EVENTS_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.events import DEFAULT_MAX_BATCH, DEFAULT_MAX_FUTURE_S, DEFAULT_MIN_TIMESTAMP
from shared.platform.settings import KafkaSettings, ServiceSettings, platform
from shared.stream import topics


class Settings(ServiceSettings, KafkaSettings):
    """Accepts user events and writes them to Kafka (acks=all)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_EVENTS_", populate_by_name=True)

    service_name: str = "events"
    port: int = Field(default=8001, ge=1, le=65535)
    topic: str = Field(default=topics.EVENTS, min_length=1, description="topic events go to")
    # Platform-wide so the events API and the offline sink create the topic alike.
    event_partitions: int = platform(
        6, ge=1, le=1024, description="partitions of the events topic when it is created"
    )
    max_batch: int = Field(default=DEFAULT_MAX_BATCH, ge=1, le=100_000)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="413 above this")
    max_future_s: float = Field(
        default=DEFAULT_MAX_FUTURE_S, ge=0, description="allowed clock skew of event timestamps"
    )
    min_timestamp: float = Field(
        default=DEFAULT_MIN_TIMESTAMP,
        ge=0,
        description="earliest accepted event timestamp, epoch seconds (default 2000-01-01)",
    )
    produce_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="wait for the broker's acks before answering 503"
    )
    require_token: bool = Field(
        default=False, description="posting events needs the admin token (clients are often apps)"
    )
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After header of a 503")
    topic_retry_s: float = Field(
        default=2.0, gt=0, description="pause between attempts to create the topic while down"
    )
