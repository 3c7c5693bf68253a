"""The "Cascade rollouts and experiments" Grafana dashboard: valid, charting only exported series.

Every ``cascade_*`` name in a target's expression (and in the template variable's query) must
be a series the code exports: the rollout controller's, the gateway's rollout and shadow
series, and the model sets' ``cascade_models_held``. A renamed metric then fails here rather
than leaving an empty panel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

import services.gateway.experiments.metrics as experiment_metrics
import services.gateway.rollouts.metrics as gateway_metrics
import services.rollouts.experiments.watch as experiment_watch
import services.rollouts.metrics as controller_metrics
import shared.models.model_set as model_set

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "rollouts.json"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
METRIC_NAME = re.compile(r"\bcascade_[A-Za-z0-9_]*")
ROWS = ("State and decisions", "Traffic by arm (guardrails)", "Shadow vs production", "Models held",
        "Experiments")  # fmt: skip
# The series a metric object exposes beside its name (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
    "enum": ("",),
}


def exported_names() -> set[str]:
    """Every series name the rollout, gateway-rollout and model-set modules export."""
    names: set[str] = set()
    modules = (gateway_metrics, controller_metrics, model_set, experiment_metrics, experiment_watch)
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                names.update(value._name + suffix for suffix in SUFFIXES[value._type])
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' collapsed panels included."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return exprs


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "Cascade rollouts and experiments"
    assert dashboard["uid"] == "cascade-rollouts"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rows = [p["title"] for p in panels(dashboard) if p["type"] == "row"]
    assert rows == list(ROWS)
    charts = [p for p in panels(dashboard) if p["type"] != "row"]
    assert charts
    for p in charts:
        assert p["title"], p
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}, p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        assert p["targets"], f"{p['title']}: no targets"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), f"{p['title']} {t['refId']}: empty expr"


def test_dashboard_uses_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    uid = re.search(r"^\s*uid:\s*(\S+)\s*$", DATASOURCES.read_text(), re.MULTILINE)
    assert uid is not None
    want = {"type": "prometheus", "uid": uid.group(1)}
    for p in panels(dashboard):
        if p["type"] != "row":
            assert p["datasource"] == want, p["title"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == want, var["name"]


def test_rollout_variable_filters_panels(dashboard: dict[str, Any]) -> None:
    (var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "rollout"]
    assert var["query"]["query"] == "label_values(cascade_rollout_step, rollout)"
    assert any("$rollout" in e for e in expressions(dashboard))


def test_every_charted_metric_is_exported(dashboard: dict[str, Any]) -> None:
    exported = exported_names()
    assert "cascade_rollout_request_duration_seconds_bucket" in exported  # suffixes applied
    assert "cascade_rollout_decisions_total" in exported
    used = {name for expr in expressions(dashboard) for name in METRIC_NAME.findall(expr)}
    assert used, "no cascade_ metric found in any expression"
    unknown = sorted(used - exported)
    assert not unknown, f"dashboard charts series the code does not export: {unknown}"
