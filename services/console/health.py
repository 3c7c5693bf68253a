"""The health page's figures, from what the services already report.

Each service's ``/readyz`` names its checks with a reason; its ``/metrics`` (the console's
latest scrape) carries consumer lag, feature freshness and the model versions it holds by
alias. Pure functions over those answers, so the aggregation is tested without servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import shared.observability as obs
from services.console.scrapes import quantiles_ms
from services.console.upstream import Answer

DEFAULT_VARIANTS = Path(__file__).resolve().parents[2] / "config" / "variants.yaml"
PRODUCTION = "production"
SLOTS = ("retrieval", "ranker")
# Gauges of how far a consumer is behind its topic: (metric, what it consumes).
LAG_GAUGES = (
    ("cascade_ingest_consumer_lag", "events -> Redis features"),
    ("cascade_offline_sink_consumer_lag", "events -> Parquet log"),
    ("cascade_exposure_lag_messages", "served + events -> exposure log"),
)
FAILURES = "cascade_consumer_failures_in_a_row"
FRESHNESS = "cascade_feature_freshness_seconds"
HELD = "cascade_models_held"


def service_row(name: str, url: str, answer: Answer | None, error: str = "") -> dict[str, Any]:
    """One service: ``up`` (ready), ``not_ready`` (answers 503: the failing checks say why)
    or ``down`` (no answer: ``error`` says why)."""
    row: dict[str, Any] = {"name": name, "url": url, "checks": {}, "ms": None}
    if answer is None:
        return {**row, "status": "down", "reason": error or "no answer"}
    body = answer.data if isinstance(answer.data, dict) else {}
    raw = body.get("checks")
    checks: dict[str, Any] = raw if isinstance(raw, dict) else {}
    row.update(checks=checks, ms=answer.ms)
    if answer.status == 200:
        return {**row, "status": "up", "reason": ""}
    failing = [
        f"{check}: {c.get('reason', '')}"
        for check, c in checks.items()
        if isinstance(c, dict) and not c.get("ok") and c.get("required", True)
    ]
    reason = "; ".join(failing) or f"/readyz answered {answer.status}"
    return {**row, "status": "not_ready", "reason": reason}


def consumers(series: Mapping[str, obs.Snapshot]) -> list[dict[str, Any]]:
    """Every consumer's lag (records behind) and failures in a row, per service."""
    rows = []
    for service, snap in sorted(series.items()):
        failures = {
            dict(k[1]).get("consumer", ""): v for k, v in snap.gauges.items() if k[0] == FAILURES
        }
        for metric, what in LAG_GAUGES:
            for (name, labels), value in snap.gauges.items():
                if name == metric:
                    rows.append(
                        {
                            "service": service,
                            "consumes": what,
                            "lag": value,
                            "labels": dict(labels),
                            "failures_in_a_row": max(failures.values(), default=0.0),
                        }
                    )
    return rows


def freshness(series: Mapping[str, obs.Snapshot]) -> dict[str, Any]:
    """Event accepted -> effect readable in Redis, over the window (all ingest instances)."""
    hist = obs.EMPTY
    for snap in series.values():
        hist = hist + snap.histogram(FRESHNESS)
    p50, p99 = quantiles_ms(hist)
    return {"events": hist.count, "p50_ms": p50, "p99_ms": p99}


def models_held(series: Mapping[str, obs.Snapshot]) -> list[dict[str, str]]:
    """(service, slot, alias, model) of every model version a service holds loaded."""
    rows = []
    for service, snap in sorted(series.items()):
        for (name, labels), value in snap.gauges.items():
            d = dict(labels)
            if name == HELD and value > 0:
                rows.append(
                    {
                        "service": service,
                        "slot": d.get("slot", ""),
                        "alias": d.get("alias", ""),
                        "model": d.get("model", ""),
                    }
                )
    return sorted(rows, key=lambda r: (r["service"], r["slot"], r["alias"]))


def read_variants(path: str | None) -> tuple[dict[str, dict[str, str]], str]:
    """Variant -> {slot: alias} of the gateway's variants file (production first), and a note
    when the file could not be read (then production alone)."""
    variants = {PRODUCTION: dict.fromkeys(SLOTS, PRODUCTION)}
    p = Path(path) if path else DEFAULT_VARIANTS
    try:
        data = yaml.safe_load(p.read_text()) or {}
        declared = data.get("variants") or {}
        for name, body in declared.items():
            models = (body or {}).get("models") or {}
            variants[str(name)] = {s: str(models.get(s, PRODUCTION)) for s in SLOTS}
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        return variants, f"variants file {p} unreadable: {exc}"
    return variants, ""


def variants_held(
    variants: Mapping[str, Mapping[str, str]], held: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """For each variant: its aliases per slot and, per model-serving service, whether that
    service holds every alias the variant needs of the slots it serves."""
    serves: dict[str, set[str]] = {}
    has: set[tuple[str, str, str]] = set()
    for r in held:
        serves.setdefault(r["service"], set()).add(r["slot"])
        has.add((r["service"], r["slot"], r["alias"]))
    out = []
    for name, models in variants.items():
        by_service = {
            service: all((service, slot, models.get(slot, PRODUCTION)) in has for slot in slots)
            for service, slots in sorted(serves.items())
        }
        out.append({"name": name, "models": dict(models), "held_by": by_service})
    return out
