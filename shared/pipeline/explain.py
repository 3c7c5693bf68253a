"""Per-item "why" traces for ``explain=true``: sources, filters passed, heads, adjustments."""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.pipeline.run import RequestRun
from shared.pipeline.types import Candidates, FilterResult, Reranked, Scores

MAX_REMOVED_LISTED = 50  # per reason: keeps an explained response small


def explain(
    cands: Candidates,
    filtered: FilterResult,
    scores: Scores,
    reranked: Reranked,
    served_rows: np.ndarray,
    run: RequestRun,
) -> dict[str, Any]:
    """The trace of one request; ``served_rows`` index ``cands``/``scores`` (the survivors)."""
    items = []
    for pos, row in enumerate(served_rows.tolist()):
        items.append(
            {
                "item_id": cands.item_ids[row],
                "position": pos,
                "sources": cands.sources_of(row),
                "filters_passed": filtered.applied,
                "heads": {h: round(float(v[row]), 6) for h, v in scores.heads.items()},
                "ranker_score": round(float(scores.score[row]), 6),
                "rerank": {n: round(float(a[pos]), 6) for n, a in reranked.adjustments.items()},
                "explored": bool(reranked.explored[pos]),
                "propensity": round(float(reranked.propensity[pos]), 6),
            }
        )
    return {
        "items": items,
        "removed": {r.reason: r.item_ids[:MAX_REMOVED_LISTED] for r in filtered.removed},
        "removed_counts": filtered.removed_counts(),
        "sources": {
            name: {"n": st.n, "ms": round(st.elapsed_ms, 3), "error": st.error}
            for name, st in cands.status.items()
        },
        "rerankers": reranked.applied,
        "stage_ms": run.summary(),
    }
