"""Settings of the ranking service (environment prefix CASCADE_RANKING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.model_loading import (
    RankerPrecision,
    model_alias_field,
    model_cache_field,
    model_poll_field,
    models_dir_field,
    ranker_precision_field,
)
from shared.settings import ServiceSettings, mlflow_field


class Settings(ServiceSettings):
    """Scores candidates with the multi-task ONNX ranker (features arrive in the request)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_RANKING_", populate_by_name=True)

    service_name: str = "ranking"
    port: int = Field(default=8005, ge=1, le=65535)
    mlflow_uri: str = mlflow_field("ranking")
    models_dir: str | None = models_dir_field("ranking")
    model_alias: str = model_alias_field("ranking")
    model_poll_s: float = model_poll_field("ranking")
    ranker_precision: RankerPrecision = ranker_precision_field("ranking")
    model_cache_dir: str = model_cache_field("ranking")
