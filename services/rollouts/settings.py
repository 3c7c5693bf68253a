"""Settings of the rollout controller (environment prefix CASCADE_ROLLOUTS_)."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.rollouts.exposure import ExposureSettings
from shared.platform.settings import BudgetSettings, ServiceSettings, platform

# The processes whose metrics a rollout reads when no Prometheus is configured: the gateway
# (arms, shadow) and every model-serving stage (which versions each holds).
SCRAPED = {
    "gateway": ("GATEWAY", 8000),
    "candidate_generation": ("CANDIDATE_GENERATION", 8003),
    "ranking": ("RANKING", 8005),
    "reranking": ("RERANKING", 8006),
}


def _local_targets() -> str:
    """The stage services on this host, at the ports they were told to use."""
    return ",".join(
        f"{name}=http://127.0.0.1:{os.environ.get(f'CASCADE_{env}_PORT', port)}"
        for name, (env, port) in SCRAPED.items()
    )


class Settings(ServiceSettings, ExposureSettings, BudgetSettings):
    """Runs canary and shadow rollouts of registered models (docs/rollouts.md)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_ROLLOUTS_", populate_by_name=True)

    service_name: str = "rollouts"
    port: int = Field(default=8009, ge=1, le=65535)
    mlflow_uri: str = platform("http://127.0.0.1:5000", description="MLflow tracking URI")
    state_path: str = Field(
        default=".run/rollouts/rollouts.sqlite", description="SQLite file of the rollouts' state"
    )
    cache_dir: str = Field(default=".cache/rollouts", description="candidates downloaded here")
    prometheus_url: str | None = platform(
        None, description="read metrics through Prometheus (unset: scrape the services)"
    )
    scrape_targets: str = Field(
        default_factory=_local_targets,
        description="name=http://host:port,... scraped when no Prometheus is set",
    )
    tick_s: float = Field(default=2.0, gt=0, le=60, description="one look at every rollout")
    warm_timeout_s: float = Field(
        default=180.0, gt=0, description="a candidate not loaded everywhere by then fails"
    )
    # Experiments' arms are checked against the gateway's own declarations: the same
    # variants file, latency budget (CASCADE_LATENCY_BUDGET) and plugins the gateway reads.
    variants: str | None = platform(
        None,
        env="GATEWAY_VARIANTS",
        description="the gateway's variants YAML (default config/variants.yaml)",
    )
    plugins: str = platform("", description="the gateway's extra components, module:Class,...")
    experiments_file: str | None = Field(
        default=None, description="experiments YAML created at start (unset: none declared)"
    )
    experiment_look_s: float = Field(
        default=10.0, ge=0.5, le=3600, description="how often a running experiment is analysed"
    )
    experiment_pre_period_s: float = Field(
        default=14 * 86_400.0, ge=0, le=90 * 86_400,
        description="events read before an experiment's start: each user's CUPED covariate "
        "(as far back as the events topic keeps)",
    )  # fmt: skip

    def targets(self) -> dict[str, str]:
        """``scrape_targets`` as name -> URL."""
        pairs = (p.split("=", 1) for p in self.scrape_targets.split(",") if "=" in p)
        return {n.strip(): u.strip() for n, u in pairs if n.strip() and u.strip()}
