"""Settings of the gateway service (environment prefix CASCADE_GATEWAY_)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.models.item_indexer import IndexSyncSettings
from shared.models.settings import ModelSettings, RankerSettings
from shared.platform.settings import (
    BudgetSettings,
    HttpUrl,
    KafkaSettings,
    ReadCacheSettings,
    RedisSettings,
    ServiceSettings,
    platform,
)
from shared.stream.topics import SERVED


def _stage_url(stage: str, port: int) -> Any:
    """CASCADE_GATEWAY_<STAGE>_URL (or platform-wide CASCADE_<STAGE>_URL); by default the
    stage on this host, at the port it was told to use (CASCADE_<STAGE>_PORT) or its own."""
    upper = stage.upper()

    def on_this_host() -> str:
        return f"http://127.0.0.1:{os.environ.get(f'CASCADE_{upper}_PORT', port)}"

    return Field(
        default_factory=on_this_host, json_schema_extra={"platform": True},
        description=f"{stage} URL",
    )  # fmt: skip


class Settings(
    ServiceSettings, RedisSettings, KafkaSettings, BudgetSettings, ReadCacheSettings,
    ModelSettings, RankerSettings, IndexSyncSettings,
):  # fmt: skip
    """Runs the request path: the declared pipeline, its deadlines and fallbacks, the log.

    The model and index-sync settings are used in in_process mode only.
    """

    model_config = SettingsConfigDict(env_prefix="CASCADE_GATEWAY_", populate_by_name=True)

    service_name: str = "gateway"
    port: int = Field(default=8000, ge=1, le=65535)
    mode: Literal["services", "in_process"] = Field(
        default="services",
        description="services: call the stage services; in_process: run every stage here",
    )
    # One hop less on the request path: the filtering stage holds no model, and as its own
    # process it cost 0.84 ms of CPU per request for about 0.1 ms of filtering (docs/serving.md).
    filtering_in_gateway: bool = Field(
        default=False,
        description="services mode: run the filtering stage here, not over its service",
    )
    candidate_generation_url: HttpUrl = _stage_url("candidate_generation", 8003)
    filtering_url: HttpUrl = _stage_url("filtering", 8004)
    ranking_url: HttpUrl = _stage_url("ranking", 8005)
    reranking_url: HttpUrl = _stage_url("reranking", 8006)
    variants: str | None = Field(
        default=None, description="variants YAML (default config/variants.yaml)"
    )
    plugins: str = platform("", description="extra components, module:Class,...")
    served_topic: str = Field(default=SERVED, min_length=1)
    served_log: bool = Field(default=True, description="log served lists to Kafka")
    served_queue: int = Field(default=10_000, ge=1, le=1_000_000)
    # kafka-python's CPU per served record, measured at 100 req/s (docs/serving.md): 0.60-0.63
    # ms at 50 ms linger, 0.35-0.40 ms at 250; the log's readers (rollouts, off-policy, skew)
    # poll every second or slower, so a quarter second of batching costs them nothing.
    served_linger_ms: int = Field(
        default=250, ge=0, le=5000, description="served-list batching: fewer, larger produces"
    )
    trending_refresh_s: float = Field(default=30.0, gt=0)
    store_check_s: float = Field(
        default=1.0, gt=0, le=60, description="how often the store is checked for being emptied"
    )
    # readiness: warm-up rounds through every stage before the gateway reports ready
    warmup_connections: int = Field(
        default=8, ge=1, le=64, description="concurrent warm-up calls (pooled connections)"
    )
    warmup_timeout_s: float = Field(default=2.0, gt=0, le=60, description="per warm-up call")
    # rollouts (services/gateway/rollouts): follow the controller's assignments
    follow_rollouts: bool = Field(
        default=True, description="split traffic as the rollout controller assigns"
    )
    rollouts_url: HttpUrl = _stage_url("rollouts", 8009)
    rollouts_poll_s: float = Field(default=1.0, gt=0, le=60, description="assignments poll")
    rollouts_stale_s: float = Field(
        default=30.0, gt=0, description="unheard-of controller: production only after this"
    )
    shadow_max_in_flight: int = Field(
        default=4, ge=0, le=256, description="concurrent shadow runs (0: never shadow)"
    )
    shadow_budget_factor: float = Field(
        default=3.0, ge=1, le=100, description="the shadow's deadlines: the budget's times this"
    )
    warmup_give_up_s: float = Field(
        default=10.0, ge=0, le=3600, description="ready anyway (degraded) after this long"
    )
