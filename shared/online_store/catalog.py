"""Encodings of catalog records and user profiles (with the segment, shared.features.popularity)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from shared.features.item import N_GENRES, genre_index, genre_multi_hot
from shared.features.popularity import UNKNOWN_SEGMENT as UNKNOWN_SEGMENT
from shared.features.popularity import user_segment
from shared.online_store import keys
from shared.online_store.types import ItemRecord, UserProfile


def encode_item(item: ItemRecord) -> bytes:
    """Catalog value of an item (compact JSON, regions sorted so equal records encode equal)."""
    return orjson.dumps(
        {
            "t": item.title,
            "g": list(item.genres),
            "y": item.release_year,
            "a": item.added_ts,
            "r": item.age_restricted,
            "rg": sorted(item.regions),
        }
    )


def decode_item(item_id: str, raw: bytes) -> ItemRecord:
    """Inverse of :func:`encode_item`."""
    d = orjson.loads(raw)
    return ItemRecord(
        item_id=item_id,
        title=d.get("t", ""),
        genres=tuple(d.get("g", ())),
        release_year=d.get("y"),
        added_ts=float(d.get("a", 0.0)),
        age_restricted=bool(d.get("r", False)),
        regions=frozenset(d.get("rg", ())),
    )


@dataclass(frozen=True)
class StaticItem:
    """The parts of a catalog record the read path needs, decoded once and cached."""

    record: ItemRecord
    genre_cols: tuple[int, ...]
    genre_vec: np.ndarray  # [N_GENRES] float32 multi-hot
    genre_mask: int  # the same genres as bits (bit i = shared.features.GENRES[i])
    year: float  # NaN when unknown


def static_item(record: ItemRecord) -> StaticItem:
    """Cacheable read-side form of a record."""
    cols = tuple(sorted({i for g in record.genres if (i := genre_index(g)) is not None}))
    year = float(record.release_year) if record.release_year else math.nan
    mask = sum(1 << c for c in cols)
    return StaticItem(record, cols, genre_multi_hot(record.genres), mask, year)


def region_text(regions: frozenset[str]) -> str:
    """Regions as the frame carries them: sorted, "|"-joined ("" = available everywhere)."""
    return "|".join(sorted(regions))


def stage_items(pipe: Any, items: Sequence[ItemRecord]) -> None:
    """Queue the writes of catalog records on a (sync or async) pipeline."""
    if not items:
        return
    # the raw MSET: cluster pipelines refuse .mset() even for same-slot keys (keys.mget)
    pipe.execute_command(
        "MSET", *[v for it in items for v in (keys.item(it.item_id), encode_item(it))]
    )
    pipe.sadd(keys.CATALOG_IDS, *[it.item_id for it in items])
    pipe.zadd(keys.FRESH, {it.item_id: it.added_ts for it in items})
    pipe.incr(keys.CATALOG_VERSION)


def profile_mapping(profile: UserProfile) -> dict[str, str]:
    """Hash fields of a user profile (absent values are not written)."""
    fields = {
        "age": profile.age,
        "gender": profile.gender,
        "occ": profile.occupation,
        "zip": profile.zip_code,
        "region": profile.region,
    }
    out = {k: str(v) for k, v in fields.items() if v is not None and v != ""}
    out["seg"] = user_segment(profile.age, profile.gender)
    return out


def stage_users(pipe: Any, profiles: Sequence[UserProfile]) -> None:
    """Queue the writes of user profiles on a (sync or async) pipeline."""
    for p in profiles:
        pipe.hset(keys.user_hash(p.user_id), mapping=profile_mapping(p))


def _int_or_none(raw: bytes | None) -> int | None:
    try:
        return int(float(raw)) if raw else None
    except ValueError:
        return None


def profile_from_hash(user_id: str, h: Mapping[bytes, bytes]) -> UserProfile:
    """A user profile from the user hash (stats fields are ignored)."""

    def text(field: bytes) -> str | None:
        v = h.get(field)
        return v.decode() if v else None

    return UserProfile(
        user_id=user_id,
        age=_int_or_none(h.get(b"age")),
        gender=text(b"gender"),
        occupation=text(b"occ"),
        zip_code=text(b"zip"),
        region=text(b"region"),
    )


class CatalogColumns:
    """Decoded catalog records as columns, so a batch of items is a few array lookups.

    Row 0 stands for "not in the catalog" (found False, no genres, unknown year, no
    restrictions); ``rows()`` maps ids to rows in one pass and every column is then taken
    with numpy fancy indexing instead of one Python attribute access per item and column.
    """

    def __init__(self) -> None:
        self._row: dict[str, int] = {}
        self.records: list[ItemRecord] = [ItemRecord(item_id="")]
        self.genres = np.zeros((1, N_GENRES), dtype=np.float32)
        self.genre_mask = np.zeros(1, dtype=np.int64)
        self.year = np.full(1, np.nan)
        self.added_ts = np.zeros(1)
        self.restricted = np.zeros(1, dtype=bool)
        self.regions: list[frozenset[str]] = [frozenset()]
        self.region_text: list[str] = [""]  # "|"-joined, sorted: the frame's regions column
        self.titles: list[str] = [""]

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def clear(self) -> None:
        """Forget every record."""
        self.__init__()  # type: ignore[misc]

    def add(self, records: Sequence[ItemRecord]) -> None:
        """Add (or replace) records."""
        fresh = [r for r in records if r.item_id not in self._row]
        for r in records:
            row = self._row.get(r.item_id)
            if row is not None:
                self._set(row, r)
        if not fresh:
            return
        start = len(self.records)
        self.records.extend(fresh)
        self.regions.extend(r.regions for r in fresh)
        self.region_text.extend(region_text(r.regions) for r in fresh)
        self.titles.extend(r.title for r in fresh)
        statics = [static_item(r) for r in fresh]
        self.genres = np.concatenate([self.genres, np.stack([s.genre_vec for s in statics])])
        self.genre_mask = np.concatenate([self.genre_mask, [s.genre_mask for s in statics]])
        self.year = np.concatenate([self.year, [s.year for s in statics]])
        self.added_ts = np.concatenate([self.added_ts, [r.added_ts for r in fresh]])
        self.restricted = np.concatenate([self.restricted, [r.age_restricted for r in fresh]])
        self._row.update((r.item_id, start + j) for j, r in enumerate(fresh))

    def _set(self, row: int, r: ItemRecord) -> None:
        s = static_item(r)
        self.records[row], self.regions[row] = r, r.regions
        self.region_text[row], self.titles[row] = region_text(r.regions), r.title
        self.genres[row], self.year[row] = s.genre_vec, s.year
        self.genre_mask[row] = s.genre_mask
        self.added_ts[row], self.restricted[row] = r.added_ts, r.age_restricted

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Row of each id (0 for ids not in the cache)."""
        get = self._row.get
        return np.fromiter(map(get, item_ids, repeat(0)), np.int64, len(item_ids))
