"""Train/validation/test splits: a global temporal split and RecBole's default protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.datasets.time_split import temporal_cutoffs


@dataclass
class Split:
    """Three disjoint interaction frames plus the times features may be computed at.

    ``val_time``/``test_time`` are the "now" of evaluation queries: for the temporal split the
    thresholds themselves, for RecBole's protocol (where time is shuffled) the end of the data.
    """

    name: str
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    val_time: float
    test_time: float
    temporal: bool


def temporal_split(
    interactions: pd.DataFrame, val_frac: float = 0.1, test_frac: float = 0.1
) -> Split:
    """Global split by timestamp: every train event precedes every val event precedes every test.

    Thresholds are timestamps (``shared.datasets.time_split``, where the bootstrap job cuts too),
    so events sharing a second never straddle a boundary.
    """
    t_val, t_test = temporal_cutoffs(interactions["timestamp"].to_numpy(), val_frac, test_frac)
    t = interactions["timestamp"]
    return Split(
        name="temporal",
        train=interactions[t < t_val].reset_index(drop=True),
        val=interactions[(t >= t_val) & (t < t_test)].reset_index(drop=True),
        test=interactions[t >= t_test].reset_index(drop=True),
        val_time=t_val,
        test_time=t_test,
        temporal=True,
    )


def _recbole_counts(total: int, ratios: tuple[float, ...]) -> list[int]:
    """RecBole 1.2 ``_calcu_split_ids``: floor each part, give the rest to train, then make
    sure a non-empty fractional part gets at least one interaction while train keeps > 1."""
    cnt = [int(r * total) for r in ratios]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def recbole_split(
    interactions: pd.DataFrame, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """RecBole's default: per user, shuffle (RO) and cut 80/10/10 by ratio."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for _, idx in interactions.groupby("user_id", sort=True).indices.items():
        idx = rng.permutation(idx)
        c = _recbole_counts(len(idx), ratios)
        parts[0].append(idx[: c[0]])
        parts[1].append(idx[c[0] : c[0] + c[1]])
        parts[2].append(idx[c[0] + c[1] :])
    frames = [interactions.iloc[np.sort(np.concatenate(p))].reset_index(drop=True) for p in parts]
    end = float(interactions["timestamp"].max()) + 1.0
    return Split("recbole", frames[0], frames[1], frames[2], end, end, temporal=False)


@dataclass
class RankerHoldout:
    """The training events split once more for stacking: the two-tower that produces the ranker's
    candidates and similarity feature is fit on ``fit``; the ranker learns from ``hold``, which
    that two-tower never saw (so its similarity on ``hold`` pairs behaves like on future pairs).

    ``query_times`` (temporal split only) are the times the ranker's training queries are asked
    at: the hold-out period's start and further points inside it.
    """

    fit: pd.DataFrame
    hold: pd.DataFrame
    query_times: list[float]

    def query_sets(self) -> list[tuple[pd.DataFrame, pd.DataFrame, float | None]]:
        """(known events, target events, query time) per batch of ranker training queries.

        Temporal: at each query time every earlier training event is known (features, seen
        items) and the hold-out events from then on are the targets. Shuffled protocol: ``fit``
        is known, ``hold`` is the target, and each user is asked after their last known event.
        """
        if not self.query_times:
            return [(self.fit, self.hold, None)]
        events = pd.concat([self.fit, self.hold], ignore_index=True)
        return [
            (events[events["timestamp"] < t], self.hold[self.hold["timestamp"] >= t], t)
            for t in self.query_times
        ]


def ranker_holdout(split: Split, frac: float, seed: int, n_query_times: int = 1) -> RankerHoldout:
    """Hold ``frac`` of ``split.train`` out, the same way ``split`` held out its test events.

    Temporal: the last ``frac`` of the training period (global time threshold, so every fit event
    precedes every hold-out event), queried at ``n_query_times`` times (its start and the
    quantiles of its events). RecBole: per user, a random ``frac`` of their training items.
    """
    train = split.train
    if split.temporal:
        ts = np.sort(train["timestamp"].to_numpy())
        t_hold = float(ts[int(len(ts) * (1.0 - frac))])
        t = train["timestamp"]
        fit, hold = (
            train[t < t_hold].reset_index(drop=True),
            train[t >= t_hold].reset_index(drop=True),
        )
        hold_ts = hold["timestamp"].to_numpy()  # sorted: the split keeps the log's time order
        times = [
            float(hold_ts[int(len(hold_ts) * k / n_query_times)]) for k in range(n_query_times)
        ]
        return RankerHoldout(fit, hold, sorted(set(times)))
    rng = np.random.default_rng(seed + 17)
    hold_idx: list[np.ndarray] = []
    for _, idx in train.groupby("user_id", sort=True).indices.items():
        hold_idx.append(rng.permutation(idx)[: int(len(idx) * frac)])
    mask = np.zeros(len(train), dtype=bool)
    mask[np.concatenate(hold_idx)] = True
    return RankerHoldout(
        train[~mask].reset_index(drop=True), train[mask].reset_index(drop=True), []
    )
