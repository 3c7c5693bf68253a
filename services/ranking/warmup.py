"""Warm-up of a ranker version before it goes live (see shared.pipeline.synthetic)."""

from __future__ import annotations

import time

from services.ranking.scorer import MultiTaskRanker, RankerKnobs
from shared.models.bundle import ModelBundle
from shared.pipeline.synthetic import synthetic_frame, synthetic_user


def warm_up_ranker(bundle: ModelBundle, n_items: int = 500) -> None:
    """Score a production-size synthetic batch with ``bundle`` (twice: arenas, then steady)."""
    ids = [f"warmup-{i}" for i in range(n_items)]
    ranker, frame = MultiTaskRanker(), synthetic_frame(ids)
    for _ in range(2):
        ranker.score(bundle, synthetic_user(ids), frame, time.time(), RankerKnobs())
