"""Ranking requests drawn from one distribution (or a shifted one), and a drift reference
written from that distribution through the real scorer, for the monitor tests.

Each request is a user (activity, ratings, recency, genre affinity) and ``n_items`` candidates
(genres, release year, windowed counts, likes). ``count_scale`` multiplies every item count:
the drifted inputs the tests inject.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from services.ranking.scorer import MultiTaskRanker, RankerKnobs
from shared.features import GENRES
from shared.frame import Frame
from shared.models.bundle import ModelBundle
from shared.monitors.features import item_values, user_values
from shared.monitors.reference import build_reference
from shared.pipeline.context import RequestContext, UserContext, VariantSpec


def request(
    rng: np.random.Generator,
    n_items: int = 100,
    count_scale: float = 1.0,
    variant: str = "production",
    now: float | None = None,
) -> tuple[RequestContext, Frame]:
    """One request's context and frame (ids "1".."n_items")."""
    now = now or time.time()
    n_events = int(rng.integers(1, 200))
    user = UserContext(
        user_id=f"u{int(rng.integers(0, 10_000))}", known=True, n_events=n_events,
        rating_sum=float(n_events * rng.uniform(2.5, 4.5)), n_ratings=n_events,
        last_event_ts=now - float(rng.exponential(5 * 86_400.0)),
        genre_affinity=rng.dirichlet(np.ones(len(GENRES))).tolist(),
    )  # fmt: skip
    total = rng.exponential(40.0, n_items).round() * count_scale
    counts = np.column_stack([total * 0.01, total * 0.1, total * 0.3, total]).round()
    columns: dict[str, Any] = {
        "genre_mask": (1 << rng.integers(1, len(GENRES), n_items)).astype(np.int64),
        "release_year": rng.integers(1950, 2000, n_items).astype(np.float64),
        "counts": counts,
        "like_count": (total * rng.uniform(0.2, 0.6, n_items)).round(),
        "rating_count": total,
        # candidate generation's column; fixed, so the draws above stay those of every test
        "ease_score": np.linspace(0.0, 0.2, n_items, dtype=np.float32),
    }
    ctx = RequestContext(request_id=f"r{int(rng.integers(0, 1 << 40))}", now=now, user=user,
                         variant=VariantSpec(name=variant))  # fmt: skip
    return ctx, Frame([str(i + 1) for i in range(n_items)], columns)


def request_body(ctx: RequestContext, frame: Frame) -> dict[str, Any]:
    """The JSON body of ``POST /v1/rank`` for ``ctx`` and ``frame``."""
    import msgspec

    cols = {k: np.asarray(v).tolist() for k, v in frame.columns.items()}
    return {"context": msgspec.to_builtins(ctx), "frame": {"ids": frame.ids, "columns": cols}}


def write_reference(
    bundle: ModelBundle, folder: Path, n_requests: int = 400, seed: int = 0
) -> Path:
    """``folder/drift_reference.json`` from ``n_requests`` steady requests scored by ``bundle``."""
    rng = np.random.default_rng(seed)
    users, items, heads = [], [], []
    ranker = MultiTaskRanker()

    def keep(feeds: dict[str, np.ndarray], scores: dict[str, np.ndarray], _ids: list[str]) -> None:
        users.append(user_values(feeds)[:1])
        items.append(item_values(feeds))
        heads.append(scores)

    for _ in range(n_requests):
        ctx, frame = request(rng)
        ranker.score(bundle, ctx.user.features(), frame, ctx.now, RankerKnobs(), keep)
    scores = {h: np.concatenate([s[h] for s in heads]) for h in heads[0]}
    ref = build_reference(np.concatenate(users), np.concatenate(items), scores, {"source": "test"})
    return ref.save(folder)
