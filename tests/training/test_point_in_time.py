"""Offline features are point-in-time and equal to the online (record) encoders."""

from __future__ import annotations

import numpy as np
import pytest

import shared.features as F
from shared.datasets import MOVIELENS_EVENT_TYPE
from shared.datasets.movielens import MovieLens
from shared.event_semantics import EVENT_SEMANTICS
from training.features.builder import FeatureBuilder


def _queries(data: MovieLens, n: int = 40) -> list[tuple[str, float]]:
    rng = np.random.default_rng(1)
    rows = data.interactions.iloc[rng.choice(len(data.interactions), n, replace=False)]
    return list(zip(rows["user_id"], rows["timestamp"].astype(float), strict=True))


def test_features_never_see_later_events(tiny_data: MovieLens) -> None:
    full = FeatureBuilder(tiny_data, tiny_data.interactions)
    inter = tiny_data.interactions
    for user, t in _queries(tiny_data):
        past = FeatureBuilder(tiny_data, inter[inter["timestamp"] < t])
        u = np.array([full.user_index[user]])
        a, b = full.user_inputs(u, t), past.user_inputs(u, t)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        items = np.arange(len(full.item_ids))
        for x, y in zip(full.item_counters(items, t), past.item_counters(items, t), strict=True):
            np.testing.assert_array_equal(x, y)


def _replay(data: MovieLens, user: str, t: float) -> F.UserFeatures:
    """What the stream worker would hold for ``user`` at ``t``: events applied one by one."""
    prof = data.users.set_index("user_id").loc[user]
    genres = dict(zip(data.items["item_id"], data.items["genres"], strict=True))
    ev = data.interactions[
        (data.interactions["user_id"] == user) & (data.interactions["timestamp"] < t)
    ]
    aff, aff_ts = None, None
    for it, ts in zip(ev["item_id"], ev["timestamp"], strict=True):
        aff, aff_ts = F.update_affinity(
            aff,
            aff_ts,
            float(ts),
            F.genre_multi_hot(genres[it]),
            EVENT_SEMANTICS[MOVIELENS_EVENT_TYPE].affinity_weight,
            F.DEFAULT_CONFIG.affinity_half_life_s,
        )
    return F.UserFeatures(
        user,
        prof["age"],
        prof["gender"],
        prof["occupation"],
        prof["zip_code"],
        history=list(ev["item_id"]),
        genre_affinity=None if aff is None else F.decay_affinity(aff, t - aff_ts, 1e6),
        n_events=len(ev),
        rating_sum=float(ev["rating"].sum()),
        n_ratings=len(ev),
        last_event_ts=float(ev["timestamp"].max()) if len(ev) else None,
    )


def test_offline_builder_equals_online_encoders(tiny_data: MovieLens) -> None:
    fb = FeatureBuilder(tiny_data, tiny_data.interactions)
    for user, t in _queries(tiny_data, 25):
        offline = fb.user_inputs(np.array([fb.user_index[user]]), t)
        online = F.encode_user_tower([_replay(tiny_data, user, t)], t)
        for k in offline:
            np.testing.assert_allclose(offline[k], online[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_item_counters_equal_online_windows(tiny_data: MovieLens) -> None:
    fb = FeatureBuilder(tiny_data, tiny_data.interactions)
    inter = tiny_data.interactions
    item = inter["item_id"].value_counts().index[0]
    ts = np.sort(inter.loc[inter["item_id"] == item, "timestamp"].to_numpy(float))
    t = float(ts[len(ts) // 2])
    counts, like, total = fb.item_counters(np.array([fb.item_index[item]]), t)
    for j, name in enumerate(("1h", "24h", "7d")):
        window, gran = F.WINDOWS[name]
        assert counts[0, j] == F.count_in_window(ts, t, window, gran)
    assert total[0] == (ts < t).sum() == counts[0, 3]
    assert (
        like[0]
        == ((inter["item_id"] == item) & (inter["timestamp"] < t) & (inter["rating"] >= 4)).sum()
    )


@pytest.mark.parametrize("now", [8.8e8, 9e8])
def test_unknown_history_is_padding(tiny_data: MovieLens, now: float) -> None:
    fb = FeatureBuilder(tiny_data, tiny_data.interactions.iloc[:0])
    x = fb.user_inputs(np.array([0]), now)
    assert (x["hist_item_hash"] == 0).all() and (x["user_genre_affinity"] == 0).all()
