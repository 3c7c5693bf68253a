"""Warm-up of a retrieval version's embeddings in the re-rank chain before it goes live."""

from __future__ import annotations

import time

import numpy as np

from services.reranking.pipeline import RERANKERS
from services.reranking.rerank_state import RerankState
from shared.models.bundle import ModelBundle
from shared.pipeline.synthetic import synthetic_frame


def warm_up_rerank(bundle: ModelBundle, n_items: int = 200) -> None:
    """Re-rank a production-size synthetic list with ``bundle``'s embeddings."""
    index = bundle.index
    if index is None:
        return
    ids = index.ids(np.arange(min(len(index), n_items)))
    rerankers = [cls() for cls in RERANKERS]
    for _ in range(2):
        state = RerankState(synthetic_frame(ids, seed=1), 20, time.time(), 7, index.embeddings)
        for r in rerankers:
            r.rerank(state, r.Knobs())
