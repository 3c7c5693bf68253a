"""Settings of the gateway service (environment prefix CASCADE_GATEWAY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import KafkaBootstrap, ServiceSettings, kafka_field


class Settings(ServiceSettings):
    """Orchestrates the request path: deadlines, fallbacks, experiments."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_GATEWAY_", populate_by_name=True)

    service_name: str = "gateway"
    port: int = Field(default=8000, ge=1, le=65535)
    kafka_bootstrap: KafkaBootstrap = kafka_field("gateway")
