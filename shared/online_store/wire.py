"""JSON forms of UserState and ItemBatch for the feature_store HTTP API (and its clients).

Items travel columnar (one list per attribute) so a client rebuilds an ItemBatch with a few
array constructions instead of hundreds of objects.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from shared.features.records import ItemFeatures, UserFeatures
from shared.online_store.types import ItemBatch, UserState

_COUNT_FIELDS = ("count_1h", "count_24h", "count_7d", "count_total", "like_count", "rating_count")


def user_state_to_json(state: UserState) -> dict[str, Any]:
    """Plain-JSON form of a user state."""
    features = asdict(state.features)
    features["history"] = list(state.features.history)
    return {
        "user_id": state.user_id,
        "known": state.known,
        "segment": state.segment,
        "region": state.region,
        "seen": sorted(state.seen),
        "blocked": sorted(state.blocked),
        "impressions": state.impressions,
        "features": features,
    }


def user_state_from_json(d: dict[str, Any]) -> UserState:
    """Inverse of :func:`user_state_to_json`."""
    f = dict(d["features"])
    f["history"] = tuple(f.get("history", ()))
    return UserState(
        features=UserFeatures(**f),
        known=bool(d["known"]),
        seen=frozenset(d.get("seen", ())),
        blocked=frozenset(d.get("blocked", ())),
        impressions={k: int(v) for k, v in d.get("impressions", {}).items()},
        segment=d.get("segment", "unknown"),
        region=d.get("region"),
    )


def item_batch_to_json(batch: ItemBatch) -> dict[str, Any]:
    """Columnar JSON form of an item batch."""
    feats = batch.features
    out: dict[str, Any] = {
        "item_ids": batch.item_ids,
        "found": batch.found.tolist(),
        "genres": [list(f.genres) for f in feats],
        "release_year": [f.release_year for f in feats],
        "added_ts": batch.added_ts.tolist(),
        "age_restricted": batch.age_restricted.tolist(),
        "regions": [sorted(r) for r in batch.regions],
        "ctr": batch.ctr.tolist(),
    }
    for name in _COUNT_FIELDS:
        out[name] = [getattr(f, name) for f in feats]
    return out


def item_batch_from_json(d: dict[str, Any]) -> ItemBatch:
    """Inverse of :func:`item_batch_to_json`."""
    ids = list(d["item_ids"])
    columns = [d[name] for name in _COUNT_FIELDS]
    features = [
        ItemFeatures(i, tuple(g), y, *counts)
        for i, g, y, *counts in zip(ids, d["genres"], d["release_year"], *columns, strict=True)
    ]
    return ItemBatch(
        item_ids=ids,
        found=np.asarray(d["found"], dtype=bool),
        features=features,
        added_ts=np.asarray(d["added_ts"], dtype=np.float64),
        age_restricted=np.asarray(d["age_restricted"], dtype=bool),
        regions=[frozenset(r) for r in d["regions"]],
        ctr=np.asarray(d["ctr"], dtype=np.float32),
    )
