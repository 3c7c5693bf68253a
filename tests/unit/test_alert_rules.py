"""The shipped alerting rules: valid (promtool check), firing on the monitors' series and
quiet below their lines (promtool test rules), and loaded by both Prometheus configs (the
local runtime's generated one passes promtool's config check with them)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from deploy.local.stack import ALERT_RULES, REPO_ROOT, prometheus_config

PROM = REPO_ROOT / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: apt-get install prometheus (scripts/bootstrap.sh does)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_rules_are_valid() -> None:
    got = _promtool("check", "rules", str(ALERT_RULES))
    assert got.returncode == 0, got.stdout + got.stderr


def test_rules_fire_on_the_monitors_series_and_not_below_their_lines() -> None:
    got = _promtool("test", "rules", str(PROM / "alerts_test.yml"))
    assert got.returncode == 0, got.stdout + got.stderr


def test_local_runtime_config_loads_the_rules(tmp_path: Path) -> None:
    path = prometheus_config({"ranking": "http://127.0.0.1:8005"}, tmp_path / "prometheus.yml")
    assert yaml.safe_load(path.read_text())["rule_files"] == [str(ALERT_RULES)]
    got = _promtool("check", "config", str(path))
    assert got.returncode == 0, got.stdout + got.stderr


def test_compose_prometheus_mounts_and_loads_the_rules() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "skew" in {job["job_name"] for job in config["scrape_configs"]}
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts


def test_overview_dashboard_shows_every_monitor() -> None:
    import json

    board = json.loads((REPO_ROOT / "deploy/grafana/dashboards/cascade-overview.json").read_text())
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    for metric in ("cascade_feature_psi", "cascade_score_psi", "cascade_skew_mismatch_rate",
                   "cascade_monitor_window_requests"):  # fmt: skip
        assert metric in exprs, metric
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
