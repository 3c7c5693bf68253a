"""Settings of the web console (environment prefix CASCADE_CONSOLE_)."""

from __future__ import annotations

import os

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.platform.settings import (
    BudgetSettings,
    KafkaSettings,
    RedisSettings,
    ServiceSettings,
    check_http_url,
    platform,
)

# Every service the console looks at, with the port it listens on by default. The console
# reaches the gateway, the events API, the rollouts service, the feature store and the ranking
# service (its monitors) by these names; all of them are shown on the health page and
# scraped for the latency page.
SERVICES = {
    "gateway": 8000,
    "events": 8001,
    "feature_store": 8002,
    "candidate_generation": 8003,
    "filtering": 8004,
    "ranking": 8005,
    "reranking": 8006,
    "ingest": 8007,
    "offline_sink": 8008,
    "rollouts": 8009,
}


def _local_services() -> str:
    """The services on this host, at the ports they were told to use (CASCADE_<NAME>_PORT)."""
    return ",".join(
        f"{name}=http://127.0.0.1:{os.environ.get(f'CASCADE_{name.upper()}_PORT', port)}"
        for name, port in SERVICES.items()
    )


class Settings(ServiceSettings, RedisSettings, KafkaSettings, BudgetSettings):
    """Serves the console's pages and the JSON API they call (docs/console.md)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_CONSOLE_", populate_by_name=True)

    service_name: str = "console"
    port: int = Field(default=8080, ge=1, le=65535)
    service_urls: str = Field(
        default_factory=_local_services,
        description="name=http://host:port,... of every service shown (gateway, events, "
        "rollouts and feature_store by these names)",
    )
    mlflow_uri: str = platform("http://127.0.0.1:5000", description="MLflow tracking URI")
    prometheus_url: str | None = platform(
        None, description="latency from Prometheus (unset: the console scrapes /metrics itself)"
    )
    variants: str | None = platform(
        None, env="GATEWAY_VARIANTS", description="the gateway's variants YAML"
    )
    scrape_s: float = Field(default=5.0, ge=0.5, le=300, description="how often /metrics is read")
    window_s: float = Field(
        default=900.0, ge=10, le=86_400, description="scrapes kept for windowed latency"
    )
    timeout_s: float = Field(default=3.0, gt=0, le=60, description="deadline of an upstream call")

    @field_validator("service_urls")
    @classmethod
    def _pairs(cls, value: str) -> str:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            name, sep, url = pair.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"'{pair}' is not name=http://host:port")
            check_http_url(url.strip())
        return value

    def services(self) -> dict[str, str]:
        """``service_urls`` as name -> base URL (no trailing slash)."""
        pairs = (p.split("=", 1) for p in self.service_urls.split(",") if "=" in p)
        return {n.strip(): u.strip().rstrip("/") for n, u in pairs if n.strip()}
