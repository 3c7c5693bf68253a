"""The latency page's figures: per-step p50/p99 of the recent window against the budget.

The gateway times every step of the request path into ``cascade_stage_duration_seconds``
(label ``stage`` = the step's name, which is also its budget entry) and the whole request into
``cascade_http_request_duration_seconds``; candidate generation times each source as
``source:<name>`` against the budget's per-source deadlines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import shared.observability as obs
from services.console.scrapes import Window, quantiles_ms
from shared.pipeline.budget import LatencyBudget

STAGE = "cascade_stage_duration_seconds"
REQUEST = "cascade_http_request_duration_seconds"
ROUTE = "/v1/recommendations"


def _row(kind: str, name: str, hist: obs.Histogram, budget_ms: float | None) -> dict[str, Any]:
    p50, p99 = quantiles_ms(hist)
    return {
        "kind": kind,
        "name": name,
        "count": hist.count,
        "p50_ms": p50,
        "p99_ms": p99,
        "budget_ms": budget_ms,
        "over_budget": p99 is not None and budget_ms is not None and p99 > budget_ms,
    }


def _stage(snap: obs.Snapshot | None, stage: str) -> obs.Histogram:
    if snap is None:
        return obs.EMPTY
    return snap.histogram(STAGE, lambda la: la.get("stage") == stage)


def latency_rows(
    series: Mapping[str, obs.Snapshot],
    budget: LatencyBudget,
    gateway: str = "gateway",
    candidates: str = "candidate_generation",
) -> list[dict[str, Any]]:
    """The request, each step of the budget, each source: p50/p99 (ms) over the window."""
    gw, cg = series.get(gateway), series.get(candidates)
    total = obs.EMPTY
    if gw is not None:
        total = gw.histogram(REQUEST, lambda la: la.get("route") == ROUTE)
    rows = [_row("request", "total", total, budget.total_ms)]
    for stage, ms in budget.stages.model_dump().items():
        rows.append(_row("step", stage, _stage(gw, stage), ms))
    for source, ms in budget.sources.items():
        rows.append(_row("source", source, _stage(cg, f"source:{source}"), ms))
    return rows


def latency_report(window: Window | None, budget: LatencyBudget, source: str) -> dict[str, Any]:
    """The JSON of ``GET /api/latency``: the rows and what they were computed from."""
    if window is None or window.span_s <= 0:
        return {
            "source": source,
            "span_s": 0.0,
            "rows": latency_rows({}, budget),
            "note": "collecting: two scrapes are needed before a window can be differenced",
        }
    return {
        "source": source,
        "span_s": round(window.span_s, 1),
        "end_ts": window.end_ts,
        "rows": latency_rows(window.series, budget),
        "note": "",
    }
