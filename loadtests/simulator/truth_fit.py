"""The closed-form fit behind the ground truth: EASE for interest, biased SVD for ratings.

Both are a few dense numpy operations on the 943 x 1682 MovieLens matrix (about two seconds on
one core); the result is a set of tables, :class:`TruthTables`, that the ground truth calibrates.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadtests.simulator.settings import GroundTruthSettings
from shared.datasets.movielens import MovieLens
from shared.datasets.time_split import temporal_cutoffs

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Str = npt.NDArray[np.str_]


@dataclass(frozen=True)
class TruthTables:
    """Every user's normal-score ranking of the catalogue and predicted ratings."""

    user_ids: Str  # MovieLens users with ratings in the fit data, in row order
    item_ids: Str  # the whole catalogue, in column order
    interest_z: F32  # (users, items): normal score of the item's rank in the user's EASE order
    rating: F32  # (users, items): predicted rating in [1, 5]
    population_z: F32  # (items,): the same for the average user
    population_rating: F32  # (items,): global mean + item bias
    user_activity: I64  # (users,): ratings in the fit data
    item_popularity: I64  # (items,): ratings in the fit data
    mean_rating: F32  # (): global mean of the fit data

    def save(self, path: Path) -> None:
        """Write the tables to ``path`` (an .npz, atomically: a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, **{f.name: getattr(self, f.name) for f in fields(self)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TruthTables:
        """Read tables written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as npz:
            return cls(**{f.name: npz[f.name] for f in fields(cls)})


def fit_tables(data: MovieLens, settings: GroundTruthSettings) -> TruthTables:
    """Fit interest (EASE) and ratings (biases + truncated SVD) on the chosen ratings."""
    inter = _fit_interactions(data.interactions, settings.fit_on)
    user_ids = np.array(sorted(inter["user_id"].unique(), key=_id_key), dtype=np.str_)
    item_ids = data.items["item_id"].to_numpy(dtype=np.str_)
    rows = pd.Index(user_ids).get_indexer(inter["user_id"])
    cols = pd.Index(item_ids).get_indexer(inter["item_id"])
    ratings = inter["rating"].to_numpy(dtype=np.float64)
    shape = (len(user_ids), len(item_ids))
    popularity = np.bincount(cols, minlength=shape[1]).astype(np.int64)
    with _one_blas_thread():
        interest = _ease_scores(rows, cols, shape, settings.ease_lambda)
        mu, item_bias, rating = _ratings(rows, cols, ratings, shape, settings)
    # Ties (items no one in the fit data rated score 0 for everyone) go to the more popular.
    interest += 1e-6 * popularity / max(int(popularity.max()), 1)
    z = _normal_scores(interest)
    return TruthTables(
        user_ids=user_ids,
        item_ids=item_ids,
        interest_z=z.astype(np.float32),
        rating=rating.astype(np.float32),
        population_z=_normal_scores(z.mean(axis=0, keepdims=True))[0].astype(np.float32),
        population_rating=np.clip(mu + item_bias, 1.0, 5.0).astype(np.float32),
        user_activity=np.bincount(rows, minlength=shape[0]).astype(np.int64),
        item_popularity=popularity,
        mean_rating=np.array(mu, dtype=np.float32),
    )


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """One BLAS thread for the fit: on two shared cores OpenBLAS threads only contend (the fit
    took 16-29 s with two threads on a loaded machine, 2.5-3 s with one)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional; the CLI also sets OPENBLAS_NUM_THREADS=1 before numpy loads
        return contextlib.nullcontext()
    limits: contextlib.AbstractContextManager[object] = threadpool_limits(1, user_api="blas")
    return limits


def _fit_interactions(inter: pd.DataFrame, fit_on: str) -> pd.DataFrame:
    """All ratings, or those from the temporal split's validation cut-off on."""
    if fit_on == "all":
        return inter
    t_val, _ = temporal_cutoffs(inter["timestamp"].to_numpy())
    return inter[inter["timestamp"] >= t_val]


def _id_key(user_id: str) -> tuple[int, str]:
    """Numeric ids in numeric order (MovieLens's), anything else after them."""
    return (int(user_id), "") if user_id.isdigit() else (1 << 62, user_id)


def _ease_scores(
    rows: I64, cols: I64, shape: tuple[int, int], lam: float
) -> npt.NDArray[np.float64]:
    """X B, B the EASE item-item weights (Steck 2019): -P / diag(P) off the diagonal, 0 on it,
    with P = (X'X + lam I)^-1."""
    x = np.zeros(shape, dtype=np.float64)
    x[rows, cols] = 1.0
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    scores: npt.NDArray[np.float64] = x @ b
    return scores


def _normal_scores(scores: npt.NDArray[np.float64] | F32) -> npt.NDArray[np.float64]:
    """Per row, each entry's rank (lowest 0) mapped to the standard normal quantile."""
    n = scores.shape[1]
    dist = NormalDist()
    by_rank = np.array([dist.inv_cdf((r + 0.5) / n) for r in range(n)])
    ranks = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1, kind="stable")
    z: npt.NDArray[np.float64] = by_rank[ranks]
    return z


def _ratings(
    rows: I64,
    cols: I64,
    ratings: npt.NDArray[np.float64],
    shape: tuple[int, int],
    settings: GroundTruthSettings,
) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(global mean, item biases, predicted rating matrix): shrunk biases + rank-r SVD."""
    mu = float(ratings.mean())
    n_u, n_i = shape
    user_bias, item_bias = np.zeros(n_u), np.zeros(n_i)
    reg = settings.bias_reg
    for _ in range(3):  # alternating ridge updates; three rounds settle to 1e-3
        item_bias = np.bincount(cols, ratings - mu - user_bias[rows], n_i) / (
            np.bincount(cols, minlength=n_i) + reg
        )
        user_bias = np.bincount(rows, ratings - mu - item_bias[cols], n_u) / (
            np.bincount(rows, minlength=n_u) + reg
        )
    predicted = mu + user_bias[:, None] + item_bias[None, :]
    rank = min(settings.rating_rank, *shape)
    if rank > 0:
        # Unrated cells count as a zero residual, which shrinks unseen pairs to the biases:
        # rank 10 gave the lowest held-out RMSE (0.921 against 0.944 for biases alone).
        residual = np.zeros(shape)
        residual[rows, cols] = ratings - predicted[rows, cols]
        u, s, vt = np.linalg.svd(residual, full_matrices=False)
        predicted += (u[:, :rank] * s[:rank]) @ vt[:rank]
    return mu, item_bias, np.clip(predicted, 1.0, 5.0)
