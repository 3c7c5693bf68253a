"""The ranker's drift reference: its monitored inputs and head scores on served-like requests.

The sample is the export's evaluation queries (the test period, features from every event
before each query, as the online store has them) ranking their retrieval candidates, scored
by the exported ranker's own function. Not the ranker's raw training rows: those add random
negatives per query, items serving never scores, which alone would read as drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.features.encoders import cross_columns
from shared.monitors.features import item_values, user_values
from shared.monitors.reference import DriftReference, build_reference
from training.models.ranker import HEADS
from training.protocol import ProtocolResult
from training.ranking import score_candidates


def drift_reference(res: ProtocolResult) -> DriftReference:
    """Reference bins from ``res``'s evaluation queries × their merged candidates."""
    q, users = res.extra["queries"], res.extra["user_feeds"]
    fb = res.extra.get("feature_builder", res.fb)
    cands, valid, ease = res.extra["candidates"], res.extra["valid"], res.extra["candidate_ease"]
    p_interact, p_like, _ = score_candidates(res.ranker, fb, users, cands, q.now, ease)
    p_interact, p_like = p_interact[valid], p_like[valid]
    rows = np.repeat(np.arange(len(cands)), cands.shape[1])[valid.reshape(-1)]
    feeds = fb.ranker_item_inputs(cands[valid], q.now[rows])
    feeds["cross"] = cross_columns(users["user_genre_affinity"][rows], feeds["item_genres"])
    meta: dict[str, Any] = {
        "source": "evaluation queries ranking their retrieval candidates (training export)",
        "n_candidates": int(cands.shape[1]),  # two-tower and EASE quotas (duplicates left out)
        "n_scored": int(valid.sum()),
    }
    scores = dict(zip(HEADS, (p_interact, p_like), strict=True))
    return build_reference(user_values(users), item_values(feeds), scores, meta)
