"""Settings of the ranking service (environment prefix CASCADE_RANKING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.ranking.monitors.settings import MonitorSettings
from shared.models.settings import ModelSettings, RankerSettings
from shared.platform.settings import KafkaSettings, ServiceSettings


class Settings(ServiceSettings, ModelSettings, RankerSettings, MonitorSettings, KafkaSettings):
    """Scores candidates with the multi-task ONNX ranker (features arrive in the request)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_RANKING_", populate_by_name=True)

    service_name: str = "ranking"
    port: int = Field(default=8005, ge=1, le=65535)
