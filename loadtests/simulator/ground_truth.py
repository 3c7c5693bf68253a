"""The hidden preference model simulated users act on.

Which data, and why that is fair. The served models are trained on the temporal split's training
period (``training.data.splits.temporal_split``: the first 80 % of the ratings by time, cut at
``shared.datasets.time_split.temporal_cutoffs``); the next 10 % only picks their epochs and the
last 10 % is never shown to them. By default (``fit_on="all"``) the ground truth is fit on every
MovieLens-100K rating, so it knows the tastes users revealed *after* the training period too: a
served model scores well here exactly when it predicts what users went on to watch, which is the
question the temporal evaluation asks, and memorising the training period earns nothing (the
local stack replays all ratings into the online store, so the seen filter never serves a rated
item). The truth is also a different model family (linear item-item EASE plus biased SVD) from
the served two-tower and ranker, so it does not reward their inductive bias. ``fit_on="heldout"``
fits only the ratings from the validation cut-off on, which no served model was fit on at all
(sparser: users without such ratings then act as new users).

Calibration, per (user, item): ``z`` is the normal score of the item's rank in the user's own
EASE ordering of the whole catalogue (0 = their median item, +2.3 = their top 1 %).
``P(click | examined) = sigmoid(logit(ctr_at_median) + click_slope * z)``; with the defaults
(2 %, slope 1) an examined item is clicked with probability 2.5 % for a random unrated item,
9 % for the ten most popular items the user did not rate, 14 % for the user's ten best unrated
items and 39 % for their very top item (``tests/unit/test_simulator_ground_truth.py``).
``P(like | click) = sigmoid(logit(like_at_4) + like_slope * (r - 4))`` with ``r`` the predicted
rating; dwell given a click is log-normal with median ``watch_median_s * exp(watch_rating_slope *
(r - 3.5))``, log-sigma ``watch_sigma``, capped at ``watch_max_s``; an examined item that is not
clicked is hidden with ``sigmoid(logit(hide_at_median) - hide_slope * z)``.

Priors: an item not in MovieLens (added at run time) has ``z = unknown_item_z`` and the global
mean rating; a user not in the fit data ranks the catalogue like the average user
(``new_user_taste="population"``) or like a MovieLens user picked by a hash of the id
(``"persona"``). The fit is cached under ``cache_dir`` keyed by the data's sha256 and the fit
settings; calibration is applied at look-up, so changing it needs no refit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from loadtests.simulator.settings import GroundTruthSettings
from loadtests.simulator.truth_fit import TruthTables, fit_tables
from shared.datasets.movielens import GROUPLENS_FILES, RECBOLE_FILES, DataError, load_movielens

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
CACHE_FORMAT = 1  # bump when TruthTables or the fit changes meaning
POPULATION = -1  # user row of someone the truth does not know
UNKNOWN = -1  # item column of an item the truth does not know


@dataclass(frozen=True)
class ListTruth:
    """The true probabilities for shown items, arrays of shape (lists, positions)."""

    p_click: F64  # given examined
    p_like: F64  # given clicked
    p_hide: F64  # given examined and not clicked
    watch_log_median: F64  # log of the dwell median (seconds), given clicked
    watch_sigma: float
    watch_max_s: float


def data_fingerprint(data_dir: Path) -> str:
    """sha256 over the data files, computed as ``load_movielens`` does (without parsing them)."""
    names = RECBOLE_FILES if (data_dir / RECBOLE_FILES[0]).exists() else GROUPLENS_FILES
    h = hashlib.sha256()
    for name in names:
        path = data_dir / name
        if not path.is_file():
            raise DataError(f"missing data file: {path} (run `make data`)")
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_path(data_dir: Path, cache_dir: Path, settings: GroundTruthSettings) -> Path:
    """Where the fit of this data with these fit settings is cached (calibration is not in it)."""
    key = f"{data_fingerprint(data_dir)}|{CACHE_FORMAT}|{settings.fit_on}|"
    key += f"{settings.ease_lambda}|{settings.rating_rank}|{settings.bias_reg}"
    return cache_dir / f"truth-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _sigmoid(x: F64) -> F64:
    out: F64 = 1.0 / (1.0 + np.exp(-x))
    return out


class GroundTruth:
    """Calibrated look-ups of the hidden preferences; build with :meth:`load`."""

    def __init__(self, tables: TruthTables, settings: GroundTruthSettings) -> None:
        self.tables = tables
        self.settings = settings
        self._users = {u: i for i, u in enumerate(tables.user_ids.tolist())}
        self._items = {it: i for i, it in enumerate(tables.item_ids.tolist())}
        self._by_popularity = np.argsort(-tables.item_popularity, kind="stable")

    @classmethod
    def load(
        cls, data_dir: Path, cache_dir: Path, settings: GroundTruthSettings | None = None
    ) -> GroundTruth:
        """The fit for the data in ``data_dir``, from the cache when it holds one."""
        settings = settings or GroundTruthSettings()
        path = cache_path(data_dir, cache_dir, settings)
        if path.is_file():
            return cls(TruthTables.load(path), settings)
        tables = fit_tables(load_movielens(data_dir), settings)
        tables.save(path)
        log.info("ground truth fit on %d users, cached at %s", len(tables.user_ids), path)
        return cls(tables, settings)

    @property
    def known_users(self) -> list[str]:
        """The MovieLens users the truth was fit on."""
        users: list[str] = self.tables.user_ids.tolist()
        return users

    def user_row(self, user_id: str) -> int:
        """The user's row, or ``POPULATION`` (or a persona's row) for someone unknown."""
        row = self._users.get(user_id)
        if row is not None:
            return row
        if self.settings.new_user_taste == "persona":
            digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
            return int.from_bytes(digest, "little") % len(self._users)
        return POPULATION

    def item_columns(self, item_ids: Sequence[str]) -> I64:
        """Column per item id; ``UNKNOWN`` for an id not in the catalogue."""
        get = self._items.get
        return np.fromiter((get(i, UNKNOWN) for i in item_ids), np.int64, len(item_ids))

    def lookup(self, rows: I64, cols: I64) -> ListTruth:
        """Probabilities for users ``rows`` (n,) and their shown items ``cols`` (n, k)."""
        z, rating = self._raw(rows, cols)
        s = self.settings
        return ListTruth(
            p_click=_sigmoid(_logit(s.ctr_at_median) + s.click_slope * z),
            p_like=_sigmoid(_logit(s.like_at_4) + s.like_slope * (rating - 4.0)),
            p_hide=_sigmoid(_logit(max(s.hide_at_median, 1e-12)) - s.hide_slope * z),
            watch_log_median=np.log(s.watch_median_s) + s.watch_rating_slope * (rating - 3.5),
            watch_sigma=s.watch_sigma,
            watch_max_s=s.watch_max_s,
        )

    def for_list(self, user_id: str, item_ids: Sequence[str]) -> ListTruth:
        """Probabilities for one shown list (arrays of shape (1, len(item_ids)))."""
        return self.lookup(np.array([self.user_row(user_id)]), self.item_columns(item_ids)[None])

    def _raw(self, rows: I64, cols: I64) -> tuple[F64, F64]:
        """(z, predicted rating) per cell, with the priors for unknown users and items."""
        t = self.tables
        r = np.broadcast_to(rows[:, None], cols.shape)
        c = np.maximum(cols, 0)
        known = r >= 0
        z = np.where(known, t.interest_z[np.maximum(r, 0), c], t.population_z[c])
        rating = np.where(known, t.rating[np.maximum(r, 0), c], t.population_rating[c])
        z_out: F64 = np.where(cols >= 0, z, self.settings.unknown_item_z).astype(np.float64)
        r_out: F64 = np.where(cols >= 0, rating, t.mean_rating).astype(np.float64)
        return z_out, r_out

    def top_items(self, user_id: str, k: int) -> list[str]:
        """The user's k truly best items, best first (an oracle ranker)."""
        row = self.user_row(user_id)
        z = self.tables.population_z if row < 0 else self.tables.interest_z[row]
        # A partial sort: a full argsort of the catalogue cost 100 us per call.
        top = np.argpartition(-z, k - 1)[:k] if 0 < k < len(z) else np.arange(len(z))[:k]
        best: list[str] = self.tables.item_ids[top[np.argsort(-z[top], kind="stable")]].tolist()
        return best

    def popular_items(self, k: int) -> list[str]:
        """The k items with the most ratings in the fit data."""
        best: list[str] = self.tables.item_ids[self._by_popularity[:k]].tolist()
        return best
