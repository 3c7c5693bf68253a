"""The monitors page's figures: the ranking service's ``GET /v1/monitors`` (docs/monitoring.md),
per variant each feature's and each head's PSI with its status, and the last skew report.

A pure function over what ``Console.read`` returns (the JSON answer, or ``{"error": ...}``), so
every case (no reference, too few sampled requests, drift off, a dead or an older ranking
service) is tested without servers. Whatever is missing says why instead of failing the page.
"""

from __future__ import annotations

from typing import Any

from shared.monitors.psi import ALERT, WARN

# The skew job's lines when its report does not carry them (docs/monitoring.md, thresholds).
SKEW_WARN = 0.01
SKEW_ALERT = 0.05


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _lines(raw: Any, warn: float, alert: float) -> dict[str, Any]:
    """The warn and alert lines an answer carries, or the documented ones."""
    got = _dict(raw)
    return {"warn": got.get("warn", warn), "alert": got.get("alert", alert)}


def _figure(raw: dict[str, Any]) -> dict[str, Any]:
    """One feature or head: name, PSI (None below ``min_requests``), status, bin fractions."""
    bins = _dict(raw.get("bins"))
    return {
        "name": str(raw.get("name", "")),
        "psi": raw.get("psi"),
        "status": str(raw.get("status", "insufficient")),
        "reference": bins.get("reference") or [],
        "served": bins.get("served") or [],
    }


def _variant(raw: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A variant's window; ``reason`` says why it has no figures or no PSI yet."""
    requests = int(raw.get("window_requests") or 0)
    status = str(raw.get("status", "unavailable"))
    model = str(raw.get("model", ""))
    reason = ""
    if not raw.get("reference"):
        status = "unavailable"
        reason = (
            f"{model or 'the model'} ships no drift reference "
            "(exported before drift_reference.json)"
        )
    elif status == "insufficient":
        reason = (
            f"{requests} of {body.get('min_requests')} sampled requests in the window "
            f"(1 in {body.get('sample_every')} is sampled): no PSI yet"
        )
    return {
        "variant": str(raw.get("variant", "")),
        "model": model,
        "status": status,
        "reason": reason,
        "window_requests": requests,
        "window_items": int(raw.get("window_items") or 0),
        "features": [_figure(f) for f in _list(raw.get("features"))],
        "scores": [_figure(f) for f in _list(raw.get("scores"))],
    }


def _skew(report: Any) -> dict[str, Any]:
    """The skew report's mismatch rate per feature, or why there is none."""
    if not isinstance(report, dict):
        return {"available": False, "reason": "no skew report yet (make skew writes one)"}
    features = _dict(report.get("features"))
    rows = [
        {
            "name": name,
            "mismatch_rate": f.get("mismatch_rate"),
            "compared": f.get("compared"),
            "mismatches": f.get("mismatches"),
            "status": str(f.get("status", "")),
        }
        for name, f in sorted(features.items())
        if isinstance(f, dict)
    ]
    return {
        "available": True,
        "reason": "",
        "finished_at": report.get("finished_at"),
        "samples": report.get("samples"),
        "thresholds": _lines(report.get("thresholds"), SKEW_WARN, SKEW_ALERT),
        "not_compared": [str(n) for n in report.get("not_compared") or []],
        "features": rows,
    }


def monitors_view(service: str, read: dict[str, Any]) -> dict[str, Any]:
    """The page's JSON from one ranking service's answer (or its ``{"error": ...}``)."""
    error = read.get("error")
    out: dict[str, Any] = {
        "service": service,
        "available": error is None,
        "reason": "",
        "thresholds": _lines(None, WARN, ALERT),
        "variants": [],
        "skew": _skew(None),
    }
    if isinstance(error, dict):
        return out | {"reason": f"{error.get('kind', '')}: {error.get('detail', '')}".strip()}
    variants = [_variant(v, read) for v in _list(read.get("variants"))]
    reason = ""
    if not variants:
        reason = (
            "drift monitoring is off (sample_every 0)"
            if read.get("sample_every") == 0
            else "no sampled request yet"
        )
    return out | {
        "reason": reason,
        "sample_every": read.get("sample_every"),
        "window_s": read.get("window_s"),
        "min_requests": read.get("min_requests"),
        "thresholds": _lines(read.get("thresholds"), WARN, ALERT),
        "variants": variants,
        "skew": _skew(read.get("skew")),
    }
