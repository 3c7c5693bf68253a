"""Settings of the events service (environment prefix CASCADE_EVENTS_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import KafkaBootstrap, ServiceSettings, kafka_field


class Settings(ServiceSettings):
    """Accepts user events and writes them to Kafka (acks=all)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_EVENTS_", populate_by_name=True)

    service_name: str = "events"
    port: int = Field(default=8001, ge=1, le=65535)
    kafka_bootstrap: KafkaBootstrap = kafka_field("events")
