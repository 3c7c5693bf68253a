"""MovieLens-100K loader for the GroupLens files (u.data/u.item/u.user) and RecBole atomic files.

Shared by the training pipeline and the feature store's bootstrap job (serving code never
imports ``training``). It needs pandas, which the services do not install: import it from jobs
only, never from a service app.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shared.features.item import GENRES

log = logging.getLogger(__name__)

RECBOLE_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
GROUPLENS_FILES = ("u.data", "u.item", "u.user")


class DataError(RuntimeError):
    """A data file is missing, unreadable or malformed; the message names the file."""


@dataclass
class MovieLens:
    """Interactions sorted by time, user profiles and item content, all ids as strings."""

    interactions: pd.DataFrame  # user_id, item_id, rating, timestamp
    users: pd.DataFrame  # user_id, age, gender, occupation, zip_code
    items: pd.DataFrame  # item_id, title, release_year (float, NaN unknown), genres (tuple)
    fingerprint: str  # sha256 over the source files: identifies the exact data a model saw
    source_format: str


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _require(path: Path) -> Path:
    if not path.is_file():
        hint = "run `make data` / python -m training.data.fetch"
        raise DataError(f"missing data file: {path} ({hint})")
    return path


def _read_recbole(path: Path) -> pd.DataFrame:
    """Read one atomic file; headers are `name:type`, values tab-separated."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except Exception as e:  # pandas raises many parser error types
        raise DataError(f"cannot parse data file {path}: {e}") from e
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    return df


def _need_columns(df: pd.DataFrame, cols: list[str], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"data file {path} lacks columns {missing} (has {list(df.columns)})")


def _numeric(series: pd.Series, path: Path, column: str) -> pd.Series:
    out = pd.to_numeric(series, errors="coerce")
    bad = out.isna() & (series.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = series.iloc[row]
        raise DataError(f"data file {path}: non-numeric {column} {value!r} at row {row + 2}")
    return out


def _finish_interactions(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    if df.empty:
        raise DataError(f"data file {path} holds no interactions")
    out = pd.DataFrame(
        {
            "user_id": df["user_id"].astype(str).str.strip(),
            "item_id": df["item_id"].astype(str).str.strip(),
            "rating": _numeric(df["rating"], path, "rating").astype(np.float32),
            "timestamp": _numeric(df["timestamp"], path, "timestamp").astype(np.int64),
        }
    )
    out = out.sort_values(["timestamp", "user_id", "item_id"], kind="stable")
    return out.reset_index(drop=True)


def _load_recbole(root: Path) -> MovieLens:
    paths = [_require(root / f) for f in RECBOLE_FILES]
    inter, item, user = (_read_recbole(p) for p in paths)
    _need_columns(inter, ["user_id", "item_id", "rating", "timestamp"], paths[0])
    _need_columns(item, ["item_id", "movie_title", "release_year", "class"], paths[1])
    _need_columns(user, ["user_id", "age", "gender", "occupation", "zip_code"], paths[2])
    items = pd.DataFrame(
        {
            "item_id": item["item_id"].str.strip(),
            "title": item["movie_title"],
            # RecBole writes a missing year as the token "unkonwn": treat any non-number as unknown.
            "release_year": pd.to_numeric(item["release_year"], errors="coerce").astype(float),
            "genres": [tuple(g.split()) for g in item["class"]],
        }
    )
    users = _users(user, paths[2])
    return MovieLens(
        _finish_interactions(inter, paths[0]), users, items, _fingerprint(paths), "recbole"
    )


def _read_grouplens(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            encoding="latin-1",
            keep_default_na=False,
            quoting=3,
            engine="python" if len(sep) > 1 else "c",
        )
    except Exception as e:
        raise DataError(f"cannot parse data file {path}: {e}") from e
    if df.shape[1] < len(names):
        raise DataError(f"data file {path} has {df.shape[1]} columns, expected {len(names)}")
    df = df.iloc[:, : len(names)]
    df.columns = names
    return df


def _load_grouplens(root: Path) -> MovieLens:
    paths = [_require(root / f) for f in GROUPLENS_FILES]
    inter = _read_grouplens(paths[0], "\t", ["user_id", "item_id", "rating", "timestamp"])
    item_cols = ["item_id", "title", "release_date", "video_date", "url", *GENRES]
    item = _read_grouplens(paths[1], "|", item_cols)
    user = _read_grouplens(paths[2], "|", ["user_id", "age", "gender", "occupation", "zip_code"])
    flags = item[list(GENRES)].to_numpy() == "1"
    year = pd.to_datetime(item["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    items = pd.DataFrame(
        {
            "item_id": item["item_id"].str.strip(),
            # GroupLens titles carry the year, "Toy Story (1995)"; RecBole strips it.
            "title": item["title"].str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True),
            "release_year": year.astype(float),
            "genres": [tuple(g for g, f in zip(GENRES, row, strict=True) if f) for row in flags],
        }
    )
    users = _users(user, paths[2])
    return MovieLens(
        _finish_interactions(inter, paths[0]), users, items, _fingerprint(paths), "grouplens"
    )


def load_movielens(root: str | Path) -> MovieLens:
    """Load MovieLens-100K from ``root``, auto-detecting the RecBole or GroupLens layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data directory not found: {root} (run `make data`)")
    if (root / RECBOLE_FILES[0]).exists():
        data = _load_recbole(root)
    elif (root / GROUPLENS_FILES[0]).exists():
        data = _load_grouplens(root)
    else:
        raise DataError(
            f"missing data file: {root / RECBOLE_FILES[0]} (or GroupLens {root / 'u.data'}); "
            "run `make data`"
        )
    unknown_items = ~data.interactions["item_id"].isin(data.items["item_id"])
    if unknown_items.any():
        bad = data.interactions.loc[unknown_items, "item_id"].iloc[0]
        raise DataError(f"interactions in {root} reference item {bad!r} absent from the item file")
    log.info(
        "loaded %s MovieLens from %s: %d interactions, %d users, %d items",
        data.source_format,
        root,
        len(data.interactions),
        len(data.users),
        len(data.items),
    )
    return data


def _users(user: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The user table in the loader's columns (both source formats have the same fields)."""
    return pd.DataFrame(
        {
            "user_id": user["user_id"].str.strip(),
            "age": _numeric(user["age"], path, "age").astype(float),
            "gender": user["gender"],
            "occupation": user["occupation"],
            "zip_code": user["zip_code"],
        }
    )
