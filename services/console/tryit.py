"""The "Try it" page's figures: the gateway's explained answer, item by item, and its waterfall."""

from __future__ import annotations

from typing import Any

from shared.pipeline.budget import LatencyBudget


def waterfall(explain: dict[str, Any], budget: LatencyBudget) -> list[dict[str, Any]]:
    """Bars of the request's steps in the order they ran (the pipeline runs them one after
    another), each with its budget; the candidate sources, which run side by side inside
    candidate generation, start where that step starts."""
    bars: list[dict[str, Any]] = []
    stages = budget.stages.model_dump()
    at = 0.0
    for step, ms in (explain.get("stage_ms") or {}).items():
        bars.append(
            {
                "name": step,
                "kind": "step",
                "start_ms": round(at, 3),
                "ms": ms,
                "budget_ms": stages.get(step),
            }
        )
        if step == "candidates":
            for source, st in sorted((explain.get("sources") or {}).items()):
                bars.append(
                    {
                        "name": source,
                        "kind": "source",
                        "start_ms": round(at, 3),
                        "ms": st.get("ms") or 0.0,
                        "budget_ms": budget.sources.get(source),
                        "error": st.get("error"),
                        "n": st.get("n"),
                    }
                )
        at += float(ms)
    return bars


def merged_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Each served item with its trace (sources, filters, heads, re-rank adjustments)."""
    traces = {t.get("position"): t for t in (body.get("explain") or {}).get("items", [])}
    items = body.get("items", [])
    return [{**item, "trace": traces.get(pos, {})} for pos, item in enumerate(items)]


def view(body: dict[str, Any], budget: LatencyBudget, round_trip_ms: float) -> dict[str, Any]:
    """What the page draws from one answer of the gateway."""
    explain = body.get("explain") or {}
    return {
        "answer": {k: v for k, v in body.items() if k not in ("items", "explain")},
        "items": merged_items(body),
        "removed_counts": explain.get("removed_counts", {}),
        "rerankers": explain.get("rerankers"),
        "variant": explain.get("variant"),
        "waterfall": waterfall(explain, budget),
        "round_trip_ms": round_trip_ms,
        "budget_total_ms": budget.total_ms,
    }
