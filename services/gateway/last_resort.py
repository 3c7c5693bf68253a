"""The answer when the runner itself raised (a bug): the last trending list, degraded."""

from __future__ import annotations

import numpy as np

from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps
from shared.frame import Frame


def last_resort(deps: StepDeps, req: RequestState) -> None:
    """Serve the last known trending list and say why."""
    pairs = deps.last_trending[: req.k]
    k = len(pairs)
    req.served_rows = np.arange(k, dtype=np.int64)
    req.frame = Frame([p[0] for p in pairs])
    req.served = Frame(
        req.frame.ids,
        {
            "row": req.served_rows,
            "final_score": np.array([p[1] for p in pairs], np.float32),
            "propensity": np.ones(k, np.float32),
            "explored": np.zeros(k, bool),
        },
    )
    req.user = None
    req.run.degrade("gateway", "internal error", "last known trending list")
