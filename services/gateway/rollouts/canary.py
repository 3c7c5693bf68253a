"""When does a rollout's model fail a request: the test behind a canary's production re-run.

A slot's model fails a request when a step that uses it degraded (``ranker``: the ranking
step; ``retrieval``: candidate generation or re-ranking, which reads the item embeddings) or,
for retrieval, when a candidate source failed inside a stage that still answered. The rest
of the request (the user read, filtering) belongs to production as much as to the canary:
its failures are not the canary's, unless the canary has its own deployment of that stage
(``endpoints``).
"""

from __future__ import annotations

from collections.abc import Iterable

from services.gateway.request_state import RequestState

SLOT_STEPS = {"ranker": ("ranking",), "retrieval": ("candidates", "reranking")}


def slot_failure(req: RequestState, slots: Iterable[str]) -> str | None:
    """Why the models of ``slots`` failed ``req`` (None: they served it)."""
    steps = tuple(step for slot in slots for step in SLOT_STEPS.get(slot, ()))
    steps += tuple(req.endpoints)  # a stage served by the canary's own deployment is its too
    for reason in req.run.degraded:
        if reason.split(":", 1)[0] in steps:
            return reason
    if "candidates" in steps:
        for name, status in req.sources.items():
            error = getattr(status, "error", None)
            if error:
                return f"candidates: source {name}: {error}"
    return None
