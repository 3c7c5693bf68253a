"""Per-item "why" traces for ``explain=true``: sources, filters passed, heads, adjustments."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.gateway.request_state import RequestState

MAX_REMOVED_LISTED = 50  # per reason: keeps an explained response small


def _columns(frame: Any, prefix: str) -> dict[str, Any]:
    return {name[len(prefix) :]: frame[name] for name in frame if name.startswith(prefix)}


def _experiments(req: RequestState) -> dict[str, Any]:
    d = req.experiment
    if d is None:
        return {}
    out: dict[str, Any] = {"arms": d.arms, "skipped": d.skipped}
    if d.interleave is not None:
        il = d.interleave
        out["interleaving"] = {"experiment": il.experiment_id, "teams": list(il.arm_names),
                               "rankers": [il.a.models.get("ranker", "production"),
                                           il.b.models.get("ranker", "production")]}  # fmt: skip
    return out


def explain(req: RequestState) -> dict[str, Any]:
    """The trace of one request, read from the frame's columns."""
    frame, served = req.frame, req.served
    sources = _columns(frame, "source_")
    heads = _columns(frame, "head_")
    items = []
    teams, neutral = req.teams(), req.neutral()
    if served is not None and req.served_rows is not None:
        adjust = _columns(served, "adjust_")
        for pos, row in enumerate(req.served_rows.tolist()):
            found = {
                s: round(float(v[row]), 6) for s, v in sources.items() if not math.isnan(v[row])
            }
            items.append(
                {
                    "item_id": served.ids[pos],
                    "position": pos,
                    "sources": found,
                    "filters_passed": req.filters,
                    "heads": {h: round(float(v[row]), 6) for h, v in heads.items()},
                    "ranker_score": round(float(frame["score"][row]), 6)
                    if "score" in frame
                    else None,
                    "rerank": {n: round(float(a[pos]), 6) for n, a in adjust.items()},
                    "explored": bool(served["explored"][pos]),
                    "propensity": round(float(served["propensity"][pos]), 6),
                    **({"team": teams[pos]} if teams is not None else {}),
                    **({"neutral": neutral[pos]} if neutral is not None else {}),
                }
            )
    return {
        "items": items,
        "removed": {reason: ids[:MAX_REMOVED_LISTED] for reason, ids in req.removed.items()},
        "removed_counts": {reason: len(ids) for reason, ids in req.removed.items()},
        "sources": {
            name: {"n": st.n, "ms": st.ms, "error": st.error} for name, st in req.sources.items()
        },
        "rerankers": req.rerankers,
        "experiments": _experiments(req),
        "variant": {
            "name": req.variant.name,
            "models": req.variant.models,
            "knobs": req.variant.knobs,
        },
        "stage_ms": req.run.summary(),
    }
