"""Settings of the gateway service (environment prefix CASCADE_GATEWAY_)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from shared.model_loading import (
    RankerPrecision,
    model_alias_field,
    model_cache_field,
    model_poll_field,
    models_dir_field,
    ranker_precision_field,
)
from shared.online_store.read_cache import read_cache_field
from shared.pipeline.budget import latency_budget_field
from shared.pipeline.item_indexer import index_sync_field
from shared.settings import (
    HttpUrl,
    KafkaBootstrap,
    RedisUrl,
    ServiceSettings,
    kafka_field,
    mlflow_field,
    redis_url_field,
)
from shared.topics import SERVED


def _stage_url(stage: str, port: int) -> Any:
    """CASCADE_GATEWAY_<STAGE>_URL (or platform-wide CASCADE_<STAGE>_URL); by default the
    stage on this host, at the port it was told to use (CASCADE_<STAGE>_PORT) or its own."""
    upper = stage.upper()

    def on_this_host() -> str:
        return f"http://127.0.0.1:{os.environ.get(f'CASCADE_{upper}_PORT', port)}"

    return Field(
        default_factory=on_this_host,
        validation_alias=AliasChoices(
            f"CASCADE_GATEWAY_{upper}_URL", f"CASCADE_{upper}_URL", f"{stage}_url"
        ),
        description=f"{stage} URL",
    )


class Settings(ServiceSettings):
    """Orchestrates the request path: deadlines, fallbacks, the served-list log."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_GATEWAY_", populate_by_name=True)

    service_name: str = "gateway"
    port: int = Field(default=8000, ge=1, le=65535)
    mode: Literal["services", "in_process"] = Field(
        default="services",
        description="services: call the stage services; in_process: run every stage here",
    )
    redis_url: RedisUrl = redis_url_field("gateway")
    kafka_bootstrap: KafkaBootstrap = kafka_field("gateway")
    candidate_generation_url: HttpUrl = _stage_url("candidate_generation", 8003)
    filtering_url: HttpUrl = _stage_url("filtering", 8004)
    ranking_url: HttpUrl = _stage_url("ranking", 8005)
    reranking_url: HttpUrl = _stage_url("reranking", 8006)
    latency_budget: str | None = latency_budget_field("gateway")
    served_topic: str = Field(default=SERVED, min_length=1)
    served_log: bool = Field(default=True, description="log served lists to Kafka")
    served_queue: int = Field(default=10_000, ge=1, le=1_000_000)
    served_linger_ms: int = Field(
        default=50, ge=0, le=5000, description="served-list batching: fewer, larger produces"
    )
    trending_refresh_s: float = Field(default=30.0, gt=0)
    read_cache_s: float = read_cache_field()
    # readiness: warm-up rounds through every stage before the gateway reports ready
    warmup_connections: int = Field(
        default=8, ge=1, le=64, description="concurrent warm-up calls (pooled connections)"
    )
    warmup_timeout_s: float = Field(default=2.0, gt=0, le=60, description="per warm-up call")
    warmup_give_up_s: float = Field(
        default=10.0, ge=0, le=3600, description="ready anyway (degraded) after this long"
    )
    index_sync_s: float = index_sync_field()  # in_process mode only
    # models, used only in in_process mode
    mlflow_uri: str = mlflow_field("gateway")
    models_dir: str | None = models_dir_field("gateway")
    model_alias: str = model_alias_field("gateway")
    model_poll_s: float = model_poll_field("gateway")
    ranker_precision: RankerPrecision = ranker_precision_field("gateway")
    model_cache_dir: str = model_cache_field("gateway")
