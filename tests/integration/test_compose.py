"""docker-compose.yml cannot run here (no Docker engine), so it is validated instead.

Checks: the compose-spec JSON schema and Debian's docker-compose parser accept it; every
long-running service has a healthcheck; every depends_on uses a condition that fits its
target; every Cascade service's ports and CASCADE_* variables match its settings class; and
every service the local runtime starts is in compose and in Prometheus's scrape config.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from deploy.compose_env import GENERATED, read_env_file, write_compose_env
from deploy.local.stack import SERVICES
from shared.platform.settings import ServiceSettings, env_names
from tests.utils.servers import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "compose_spec.json"
PLATFORM_VARS = {"CASCADE_LOG_JSON"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _is_job(svc: dict[str, Any]) -> bool:
    return (svc.get("labels") or {}).get("cascade.kind") == "job"


def _cascade_services(compose: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    found = {}
    for name, svc in compose["services"].items():
        label = (svc.get("labels") or {}).get("cascade.service")
        if label:
            found[label] = (name, svc)
    return found


def _accepted_env_names(settings_cls: type[ServiceSettings]) -> set[str]:
    return {n for field in settings_cls.model_fields for n in env_names(settings_cls, field)}


def test_schema_valid(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)


def _docker_compose_config(
    env: dict[str, str], cwd: Path, quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config``: -q only checks, without it the resolved file is printed."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) missing: `make bootstrap` installs it"
    return subprocess.run(
        [binary, "-f", str(COMPOSE), "--project-directory", str(cwd), "config",
         *(["-q"] if quiet else [])],
        capture_output=True, text=True, timeout=60, env=env, cwd=cwd,
    )  # fmt: skip


def test_docker_compose_parses_it_with_the_generated_credentials(tmp_path: Path) -> None:
    """``make compose-env`` writes what compose needs; without it compose refuses to start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
    without = _docker_compose_config(env, tmp_path)
    assert without.returncode != 0 and "make compose-env" in without.stderr
    env_path, token, read = write_compose_env(tmp_path)
    for path in (env_path, token, read):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert token.read_text() != read.read_text()
    values = read_env_file(env_path)
    assert set(values) == set(GENERATED) and len(values["CASCADE_POSTGRES_PASSWORD"]) >= 24
    assert write_compose_env(tmp_path) and read_env_file(env_path) == values  # kept on re-run
    (tmp_path / "deploy").symlink_to(REPO_ROOT / "deploy")  # relative mounts resolve
    proc = _docker_compose_config(env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "CASCADE_READ_TOKEN_FILE=/run/secrets/read_token" in env_path.read_text()  # a hint
    with env_path.open("a") as f:
        f.write("CASCADE_READ_TOKEN_FILE=/run/secrets/read_token\n")  # reads protected
    resolved = _docker_compose_config(env, tmp_path, quiet=False)
    gateway = yaml.safe_load(resolved.stdout)["services"]["gateway"]
    assert gateway["environment"]["CASCADE_READ_TOKEN_FILE"] == "/run/secrets/read_token"


PUBLISHED = {"gateway", "events", "console", "prometheus", "grafana"}


def test_only_what_a_client_needs_is_published_and_on_loopback(compose: dict[str, Any]) -> None:
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == PUBLISHED
    for name in published:
        for mapping in compose["services"][name]["ports"]:
            assert str(mapping).startswith("127.0.0.1:"), f"{name}: {mapping} on every interface"


def test_infrastructure_has_no_route_out(compose: dict[str, Any]) -> None:
    assert compose["networks"]["backend"] == {"internal": True}
    for name, svc in compose["services"].items():
        networks = svc.get("networks") or compose["x-service"]["networks"]
        assert "backend" in networks, f"{name} is not on the internal network"
        if "frontend" in networks:  # published, or the trainer (it downloads the dataset)
            assert name in PUBLISHED | {"trainer"}, f"{name} has a route out"


def test_no_credential_is_written_in_the_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET|ACCESS_KEY|TOKEN$", key):
                assert str(value).startswith("${"), f"{name}: {key} is written in the file"
    assert "cascade-secret" not in text and ":mlflow@" not in text
    for name, svc in _cascade_services(compose).values():
        env = svc.get("environment") or {}
        assert env.get("CASCADE_ADMIN_TOKEN_FILE") == "/run/secrets/admin_token", name
        # reads: protected where .env names the secret, open (empty) otherwise
        assert env.get("CASCADE_READ_TOKEN_FILE") == "${CASCADE_READ_TOKEN_FILE:-}", name
        secrets = svc.get("secrets") or compose["x-service"]["secrets"]
        assert {"admin_token", "read_token"} <= set(secrets), name


def test_every_service_has_healthcheck_and_conditions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if not _is_job(svc):
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            wanted = (
                "service_completed_successfully" if _is_job(services[dep]) else "service_healthy"
            )
            assert cond["condition"] == wanted, f"{name} -> {dep}: {cond}"


def test_ports_and_env_match_settings(compose: dict[str, Any]) -> None:
    for label, (name, svc) in _cascade_services(compose).items():
        settings_cls = importlib.import_module(f"services.{label}.settings").Settings
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        accepted = _accepted_env_names(settings_cls) | PLATFORM_VARS
        unknown = {k for k in env if k.startswith("CASCADE_") and k not in accepted}
        assert not unknown, f"{name}: variables its settings do not read: {sorted(unknown)}"
        port = env[f"CASCADE_{label.upper()}_PORT"]
        assert port == str(settings_cls.model_fields["port"].default)
        assert f"127.0.0.1:{port}/readyz" in " ".join(svc["healthcheck"]["test"])
        for mapping in svc.get("ports", []):
            assert str(mapping).split(":")[-1] == port, f"{name}: {mapping} vs {port}"
        assert svc["command"] == [f"services.{label}"]


def _connection_fields(settings_cls: type[ServiceSettings]) -> list[str]:
    """Fields whose loopback default is wrong inside a container: they must be set."""
    conn = {"redis_url", "kafka_bootstrap", "mlflow_uri"}
    return [f for f in settings_cls.model_fields if f in conn or f.endswith("_url")]


def test_every_connection_setting_points_at_a_compose_service(compose: dict[str, Any]) -> None:
    """A service left on a 127.0.0.1 default would not reach Redis, Kafka, MLflow or a stage."""
    hosts = set(compose["services"])
    for label, (name, svc) in _cascade_services(compose).items():
        settings_cls = importlib.import_module(f"services.{label}.settings").Settings
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        for field in _connection_fields(settings_cls):
            info = settings_cls.model_fields[field]
            given = [env[n] for n in env_names(settings_cls, field) if n in env]
            assert given, f"{name}: {field} not set (would default to {info.default})"
            host = re.split(r"[:/]", given[0].split("://", 1)[-1])[0]
            assert host in hosts, f"{name}: {field}={given[0]} names no compose service"


def test_latency_budget_and_variants_ship_in_the_serving_image() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    copied = re.search(r"COPY config/latency_budget.yaml (\S+)", dockerfile)
    assert copied, "the serving image does not carry config/latency_budget.yaml"
    assert f"CASCADE_LATENCY_BUDGET={copied.group(1)}" in dockerfile
    variants = re.search(r"COPY config/variants.yaml (\S+)", dockerfile)
    assert variants, "the serving image does not carry config/variants.yaml"
    assert f"CASCADE_GATEWAY_VARIANTS={variants.group(1)}" in dockerfile


def test_runtime_services_are_all_deployed(compose: dict[str, Any]) -> None:
    deployed = _cascade_services(compose)
    prom = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    for name in SERVICES:
        assert name in deployed, f"{name} missing from docker-compose.yml"
        compose_name, svc = deployed[name]
        port = svc["environment"][f"CASCADE_{name.upper()}_PORT"]
        targets = jobs[name]["static_configs"][0]["targets"]
        assert targets == [f"{compose_name}:{port}"]


def test_serving_image_carries_no_torch() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert not re.search(r"\[.*train.*\]", dockerfile), "serving image installs the train extra"
    assert "find_spec('torch') is not None" in dockerfile  # the build fails if torch sneaks in
