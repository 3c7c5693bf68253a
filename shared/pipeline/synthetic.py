"""Plausible synthetic requests of production size, for warm-up before a service is ready.

A service that just started has cold paths: ONNX Runtime arenas sized for the schema check's
small batch, hnswlib's visited lists for a small ``ef``, no pooled connections yet. Left to
the first real requests, those costs run past the stage deadlines. So every model version
runs its stage code on these inputs before it goes live, and the gateway sends them through
every stage before it reports ready.
"""

from __future__ import annotations

import time

import numpy as np

from shared.features import GENRES, UserFeatures
from shared.features.genre_mask import genre_mask
from shared.frame import Frame
from shared.pipeline.context import RequestContext, UserContext

WARMUP_USER = "cascade-warmup"  # an id no real user has: served by the cold-start sources
WARMUP_ITEMS = 500  # the default candidate count


def synthetic_frame(item_ids: list[str], seed: int = 0) -> Frame:
    """Every store column, plausibly filled (genres, years, counters, a few restrictions), and
    candidate generation's ``ease_score``."""
    rng = np.random.default_rng(seed)
    n = len(item_ids)
    pairs = rng.integers(0, len(GENRES), size=(n, 2))
    counts = np.sort(rng.integers(0, 500, (n, 4)), axis=1).astype(np.float64)
    return Frame(
        item_ids,
        {
            "found": np.ones(n, dtype=bool),
            "title": [f"item {i}" for i in item_ids],
            "genre_mask": np.fromiter(
                (genre_mask((GENRES[a], GENRES[b])) for a, b in pairs), np.int64, n
            ),
            "release_year": rng.integers(1930, 2000, n).astype(np.float64),
            "added_ts": np.full(n, time.time() - 86_400.0),
            "age_restricted": np.arange(n) % 10 == 9,
            "regions": ["EU" if i % 25 == 24 else "" for i in range(n)],
            "counts": counts,
            "like_count": counts[:, 3] / 3,
            "rating_count": counts[:, 3].copy(),
            "ctr": np.full(n, 0.05, dtype=np.float32),
            "seen": np.arange(n) % 7 == 0,
            "blocked": np.zeros(n, dtype=bool),
            "impressions": np.arange(n, dtype=np.int64) % 3,
            "score": np.linspace(1.0, 0.0, n, dtype=np.float32),
            "ease_score": rng.exponential(0.05, n).astype(np.float32),
        },
    )


def synthetic_user(item_ids: list[str], user_id: str = WARMUP_USER) -> UserFeatures:
    """A returning user with a profile, a history and genre affinities."""
    return UserFeatures(
        user_id=user_id, age=30, gender="F", occupation="other", zip_code="00000",
        history=tuple(item_ids[:20]), genre_affinity=[1.0] * len(GENRES), n_events=20,
        rating_sum=70.0, n_ratings=20, last_event_ts=time.time() - 3600.0,
    )  # fmt: skip


def synthetic_context(item_ids: list[str], k: int = 20) -> RequestContext:
    """The context of a warm-up request by :func:`synthetic_user`."""
    u = synthetic_user(item_ids)
    user = UserContext(
        user_id=u.user_id, known=True, age=u.age, gender=u.gender, occupation=u.occupation,
        zip_code=u.zip_code, region="US", segment="25-34|f", history=list(u.history),
        genre_affinity=list(u.genre_affinity or ()), n_events=u.n_events,
        rating_sum=u.rating_sum, n_ratings=u.n_ratings, last_event_ts=u.last_event_ts,
    )  # fmt: skip
    return RequestContext(request_id="warmup", now=time.time(), user=user, k=k, seed=7)
