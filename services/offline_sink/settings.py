"""Settings of the offline sink (environment prefix CASCADE_OFFLINE_SINK_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.events import DEFAULT_MAX_FUTURE_S
from shared.platform.settings import KafkaSettings, ServiceSettings
from shared.stream import topics
from shared.stream.settings import ConsumerGroupSettings


class Settings(ServiceSettings, KafkaSettings, ConsumerGroupSettings):
    """Consumes ``events`` in its own group and appends them to Parquet by date."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_OFFLINE_SINK_", populate_by_name=True)

    service_name: str = "offline_sink"
    port: int = Field(default=8008, ge=1, le=65535)
    topic: str = Field(default=topics.EVENTS, min_length=1)
    dlq_topic: str = Field(default=topics.EVENTS_DLQ, min_length=1)
    group_id: str = Field(default="offline-sink", min_length=1)
    data_dir: Path = Field(default=Path("data/events"), description="root of the Parquet log")
    flush_events: int = Field(default=10_000, ge=1, description="write a file after this many")
    flush_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="...or once the oldest buffered event waited this"
    )
    min_free_mb: float = Field(
        default=64.0,
        ge=0,
        description="below this free space write nothing: events wait in the broker, not ready",
    )
    max_poll_records: int = Field(default=2000, ge=1)
    dlq_timeout_s: float = Field(default=5.0, gt=0, description="wait for the DLQ's acks")
    max_future_s: float = Field(
        default=DEFAULT_MAX_FUTURE_S,
        ge=0,
        description="dead-letter events timestamped further ahead of this clock (as the API does)",
    )
