"""What the local runtime runs: infrastructure first, then every service, as data.

Ports and URLs come from the same settings classes the services read, so the runtime, the
services and the Prometheus scrape config cannot disagree.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.local import infra
from deploy.local.processes import ProcessSpec, free_port
from shared.platform.auth import ensure_token_file
from shared.platform.settings import ServiceSettings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]

# Start order: stages before the gateway that calls them; the stream workers last.
SERVICES: tuple[str, ...] = (
    "feature_store",
    "candidate_generation",
    "filtering",
    "ranking",
    "reranking",
    "gateway",
    "events",
    "ingest",
    "offline_sink",
    "rollouts",
    "console",  # reads every service above: started last
)


class RuntimeSettings(BaseSettings):
    """Settings of the local runtime itself (prefix CASCADE_LOCAL_)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_LOCAL_", extra="ignore")

    service_name: str = "local-runtime"
    run_dir: Path = REPO_ROOT / ".run"
    redis_port: int = Field(default=6390, ge=1, le=65535)
    kafka_port: int = Field(default=19092, ge=1, le=65535)
    mlflow_port: int = Field(default=5050, ge=1, le=65535)
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    ready_timeout_s: float = Field(default=180.0, gt=0)
    models_dir: Path = REPO_ROOT / "models"
    reports_dir: Path = REPO_ROOT / "reports"  # the training run's evaluation report
    data_dir: Path = REPO_ROOT / "data"
    tiny: bool = False
    protect_reads: bool = Field(
        default=False, description="every read needs the read token (.run/read_token)"
    )
    only: str = Field(
        default="", description="start only these services (comma-separated; default: all)"
    )

    def services(self) -> tuple[str, ...]:
        """The services to start, in start order; an unknown name stops the runtime."""
        wanted = {s.strip() for s in self.only.split(",") if s.strip()}
        unknown = wanted - set(SERVICES)
        if unknown:
            raise ValueError(f"CASCADE_LOCAL_ONLY names no service: {sorted(unknown)}")
        return tuple(s for s in SERVICES if not wanted or s in wanted)


@dataclass(frozen=True)
class Infra:
    """Where the platform's dependencies are, and which of them we must start."""

    redis_url: str
    kafka_bootstrap: str
    mlflow_uri: str
    start: tuple[ProcessSpec, ...]


def plan_infra(rt: RuntimeSettings) -> Infra:
    """Use Redis/Kafka/MLflow given by env (CASCADE_REDIS_URL...), start the others ourselves."""
    start: list[ProcessSpec] = []
    redis_url = os.environ.get("CASCADE_REDIS_URL", "")
    if not redis_url:
        spec = infra.redis_spec(rt.redis_port, rt.run_dir / "redis")
        start.append(spec)
        redis_url = spec.url
    kafka = os.environ.get("CASCADE_KAFKA_BOOTSTRAP", "")
    if not kafka:
        spec = infra.tansu_spec(rt.kafka_port)
        start.append(spec)
        kafka = spec.url
    mlflow_uri = os.environ.get("CASCADE_MLFLOW_URI", "")
    if not mlflow_uri:
        spec = infra.mlflow_spec(rt.mlflow_port, rt.run_dir / "mlflow")
        start.append(spec)
        mlflow_uri = spec.url
    return Infra(redis_url, kafka, mlflow_uri, tuple(start))


def platform_env(inf: Infra, run_dir: Path, protect_reads: bool = False) -> dict[str, str]:
    """Environment every service process gets (registry downloads cached under the run dir);
    with ``protect_reads`` the read token too (generated once, 0600, like the admin token)."""
    reads = {"CASCADE_READ_TOKEN_FILE": str(ensure_token_file(run_dir / "read_token"))}
    return {
        **(reads if protect_reads else {}),
        "CASCADE_MODEL_CACHE_DIR": str(run_dir / "model_cache"),
        # Aliases are polled every 5 s, so a rollout's candidate is loaded within seconds.
        "CASCADE_MODEL_POLL_S": "5",
        "CASCADE_ROLLOUTS_STATE_PATH": str(run_dir / "rollouts" / "rollouts.sqlite"),
        "CASCADE_ROLLOUTS_CACHE_DIR": str(run_dir / "rollouts" / "candidates"),
        "CASCADE_REDIS_URL": inf.redis_url,
        "CASCADE_KAFKA_BOOTSTRAP": inf.kafka_bootstrap,
        "CASCADE_MLFLOW_URI": inf.mlflow_uri,
        "MLFLOW_TRACKING_URI": inf.mlflow_uri,
        # One admin token for every write (generated once, 0600): shared/platform/auth.py.
        "CASCADE_ADMIN_TOKEN_FILE": str(ensure_token_file(run_dir / "admin_token")),
        "PYTHONPATH": str(REPO_ROOT),
    }


def service_settings(name: str, env: dict[str, str]) -> ServiceSettings:
    """The settings ``services.<name>`` will see with ``env`` applied (for its port)."""
    module = importlib.import_module(f"services.{name}.settings")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings: ServiceSettings = load_settings(module.Settings)
        return settings
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def service_spec(name: str, env: dict[str, str]) -> ProcessSpec:
    """``python -m services.<name>`` with readiness taken from its /readyz."""
    settings = service_settings(name, env)
    base = f"http://{settings.host}:{settings.port}"
    return ProcessSpec(
        name,
        [sys.executable, "-m", f"services.{name}"],
        lambda: infra.service_ok(f"{base}/readyz", settings.service_name),
        env=env,
        cwd=REPO_ROOT,
        ready_timeout_s=180,
        url=base,
    )


def service_on_free_port(
    name: str,
    env: dict[str, str] | None = None,
    *,
    port: int | None = None,
    ready_path: str = "/readyz",
    label: str | None = None,
    ready_timeout_s: float = 120.0,
) -> ProcessSpec:
    """``python -m services.<name>`` on a free (or given) loopback port, JSON logs.

    What tests and benchmarks start; the runtime uses ``service_spec`` (ports from settings).
    """
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {
        "PYTHONPATH": str(REPO_ROOT),
        "CASCADE_LOG_JSON": "true",
        **(env or {}),
        f"CASCADE_{name.upper()}_PORT": str(port),
    }
    return ProcessSpec(
        label or name,
        [sys.executable, "-m", f"services.{name}"],
        lambda: infra.service_ok(f"{base}{ready_path}", name),
        env=full_env,
        cwd=REPO_ROOT,
        ready_timeout_s=ready_timeout_s,
        url=base,
    )


# The stages the gateway calls: it is told where the runtime started them.
GATEWAY_STAGES: tuple[str, ...] = ("candidate_generation", "filtering", "ranking", "reranking")


def service_specs(env: dict[str, str], names: tuple[str, ...] = SERVICES) -> list[ProcessSpec]:
    """``names`` in start order; the gateway gets its stages' addresses (unless set by env)."""
    specs: dict[str, ProcessSpec] = {}
    for name in names:
        extra = {}
        if name == "gateway":
            wanted = {f"CASCADE_GATEWAY_{s.upper()}_URL": specs[s].url
                      for s in GATEWAY_STAGES if s in specs}  # fmt: skip
            extra = {k: v for k, v in wanted.items() if k not in os.environ}
        specs[name] = service_spec(name, {**env, **extra})
    return list(specs.values())


ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"  # docs/monitoring.md


def prometheus_config(targets: dict[str, str], path: Path, interval_s: int = 5) -> Path:
    """Write a Prometheus config scraping every service's /metrics, with the alerting rules."""
    lines = [
        "global:",
        f"  scrape_interval: {interval_s}s",
        "  evaluation_interval: 15s",
        f"rule_files: ['{ALERT_RULES}']",
        "scrape_configs:",
    ]
    for name, url in targets.items():
        hostport = url.split("://", 1)[-1]
        lines += [
            f"  - job_name: {name}",
            "    static_configs:",
            f"      - targets: ['{hostport}']",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
