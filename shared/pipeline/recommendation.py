"""Recommendation: the served list of one request, its explanation and its log record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Recommendation:
    """What the pipeline decided for one request (transport-agnostic)."""

    request_id: str
    user_id: str
    k: int
    now: float
    item_ids: list[str]
    scores: np.ndarray  # float32 [k]
    propensity: np.ndarray  # float32 [k]
    explored: np.ndarray  # bool [k]
    cold_start: str  # returning | new_user | unknown_user
    degraded: list[str] = field(default_factory=list)
    model_versions: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    server_timing: str = ""
    trace: dict[str, Any] | None = None

    def to_response(self) -> dict[str, Any]:
        """The public JSON body of GET /v1/recommendations."""
        items: list[dict[str, Any]] = [
            {"item_id": i, "score": round(float(s), 6)}
            for i, s in zip(self.item_ids, self.scores.tolist(), strict=True)
        ]
        for pos in np.flatnonzero(self.explored):
            items[pos]["explored"] = True
        body: dict[str, Any] = {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "k": self.k,
            "items": items,
            "degraded": bool(self.degraded),
            "degraded_reasons": self.degraded,
            "cold_start": self.cold_start,
            "model_versions": self.model_versions,
        }
        if self.trace is not None:
            body["explain"] = self.trace
        return body

    def to_served_event(self) -> dict[str, Any]:
        """The record logged to the ``served`` topic (columnar: one array per field)."""
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "ts": self.now,
            "item_ids": self.item_ids,
            "scores": [round(s, 6) for s in self.scores.tolist()],
            "propensity": [round(p, 6) for p in self.propensity.tolist()],
            "explored": self.explored.tolist(),
            "cold_start": self.cold_start,
            "degraded": self.degraded,
            "model_versions": self.model_versions,
        }
