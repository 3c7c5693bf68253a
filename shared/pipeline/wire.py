"""JSON wire format between the gateway and the stage services: columnar and compact.

Requests are validated by pydantic (a bad body is a 422 naming the field); responses are
trusted (they come from our own services) and decoded straight into numpy arrays.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.features import UserFeatures
from shared.pipeline.filter_input import FilterInput, FilterUser
from shared.pipeline.items import ItemColumns
from shared.pipeline.rerank_state import RerankInput
from shared.pipeline.tunables import DEFAULT_TUNABLES, Tunables
from shared.pipeline.types import (
    Candidates,
    FilterResult,
    Removed,
    Reranked,
    Scores,
    SourceStatus,
)

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
MAX_ITEMS = 5000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _same_length(name: str, n: int, **columns: list[Any]) -> None:
    for col, values in columns.items():
        if len(values) != n:
            raise ValueError(f"{col} has {len(values)} entries, {name} has {n}")


# ---- candidate generation -------------------------------------------------------------------


class CandidatesBody(_Body):
    """POST /v1/candidates."""

    user_id: str = Field(pattern=ID_PATTERN)
    now: float = Field(gt=0)
    tunables: Tunables = DEFAULT_TUNABLES


def encode_candidates(c: Candidates) -> dict[str, Any]:
    """Candidates as columns; provenance per source as parallel row/score arrays."""
    return {
        "item_ids": c.item_ids,
        "provenance": {s: [rows, scores] for s, (rows, scores) in c.provenance.items()},
        "status": {s: [st.n, round(st.elapsed_ms, 3), st.error] for s, st in c.status.items()},
        "model_versions": c.model_versions,
    }


def decode_candidates(d: dict[str, Any]) -> Candidates:
    """Inverse of :func:`encode_candidates`."""
    prov = {
        s: (np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float32))
        for s, (rows, scores) in d["provenance"].items()
    }
    status = {s: SourceStatus(int(v[0]), float(v[1]), v[2]) for s, v in d["status"].items()}
    return Candidates(list(d["item_ids"]), prov, status, dict(d.get("model_versions", {})))


# ---- filtering --------------------------------------------------------------------------------


class FilterUserBody(_Body):
    """The user attributes the filters need."""

    seen: list[str] = Field(default_factory=list, max_length=100_000)
    blocked: list[str] = Field(default_factory=list, max_length=100_000)
    age: int | None = Field(default=None, ge=0, le=150)
    region: str | None = Field(default=None, max_length=64)


class FilterBody(_Body):
    """POST /v1/filter: candidates with restriction columns (sparse) and the user."""

    item_ids: list[str] = Field(max_length=MAX_ITEMS)
    found: list[bool]
    age_restricted: list[int] = Field(default_factory=list, description="rows restricted")
    regions: dict[int, list[str]] = Field(default_factory=dict, description="row -> regions")
    user: FilterUserBody = Field(default_factory=FilterUserBody)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        n = len(self.item_ids)
        _same_length("item_ids", n, found=self.found)
        bad = [r for r in [*self.age_restricted, *self.regions] if not 0 <= r < n]
        if bad:
            raise ValueError(f"rows {bad[:5]} are outside 0..{n - 1}")
        return self

    def to_input(self) -> FilterInput:
        """The filter chain's input."""
        n = len(self.item_ids)
        restricted = np.zeros(n, dtype=bool)
        restricted[self.age_restricted] = True
        regions: list[frozenset[str]] = [frozenset()] * n
        for row, names in self.regions.items():
            regions[row] = frozenset(names)
        u = self.user
        user = FilterUser(frozenset(u.seen), frozenset(u.blocked), u.age, u.region)
        found = np.asarray(self.found, dtype=bool)
        return FilterInput(self.item_ids, found, restricted, regions, user)


def encode_filter_input(b: FilterInput) -> dict[str, Any]:
    """The request body of POST /v1/filter."""
    u = b.user
    return {
        "item_ids": b.item_ids,
        "found": b.found,
        "age_restricted": np.flatnonzero(b.age_restricted),
        "regions": {str(i): sorted(r) for i, r in enumerate(b.regions) if r},
        "user": {
            "seen": list(u.seen),
            "blocked": list(u.blocked),
            "age": u.age,
            "region": u.region,
        },
    }


def encode_filter_result(r: FilterResult) -> dict[str, Any]:
    """Survivor rows and removals per reason."""
    return {
        "kept": r.kept,
        "removed": {x.reason: x.item_ids for x in r.removed},
        "applied": r.applied,
    }


def decode_filter_result(d: dict[str, Any]) -> FilterResult:
    """Inverse of :func:`encode_filter_result`."""
    removed = [Removed(reason, list(ids)) for reason, ids in d["removed"].items()]
    return FilterResult(np.asarray(d["kept"], dtype=np.int64), removed, list(d["applied"]))


# ---- ranking ----------------------------------------------------------------------------------


class ItemsBody(_Body):
    """Item columns the ranker needs."""

    item_ids: list[str] = Field(max_length=MAX_ITEMS)
    genre_mask: list[int]
    release_year: list[float | None]
    counts: list[list[float]] = Field(description="per item: 1h, 24h, 7d, total")
    like_count: list[float]
    rating_count: list[float]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        n = len(self.item_ids)
        _same_length(
            "item_ids", n, genre_mask=self.genre_mask, release_year=self.release_year,
            counts=self.counts, like_count=self.like_count, rating_count=self.rating_count,
        )  # fmt: skip
        if any(len(c) != 4 for c in self.counts):
            raise ValueError("each counts entry must hold 4 numbers (1h, 24h, 7d, total)")
        return self

    def to_columns(self) -> ItemColumns:
        """ItemColumns with the ranking fields filled (restrictions are not needed here)."""
        cols = ItemColumns.unknown(self.item_ids)
        n = len(self.item_ids)
        cols.found = np.ones(n, dtype=bool)
        cols.genre_mask = np.asarray(self.genre_mask, dtype=np.int64)
        cols.release_year = np.asarray(self.release_year, dtype=np.float64)
        cols.counts = np.asarray(self.counts, dtype=np.float64).reshape(n, 4)
        cols.like_count = np.asarray(self.like_count, dtype=np.float64)
        cols.rating_count = np.asarray(self.rating_count, dtype=np.float64)
        return cols


class RankBody(_Body):
    """POST /v1/rank: one user, the candidate columns, optional blend weights."""

    now: float = Field(gt=0)
    user: UserFeatures
    items: ItemsBody
    weights: dict[str, float] | None = None


def encode_rank_request(
    user: UserFeatures, items: ItemColumns, now: float, weights: dict[str, float] | None
) -> dict[str, Any]:
    """The request body of POST /v1/rank."""
    return {
        "now": now,
        "user": {
            "user_id": user.user_id, "age": user.age, "gender": user.gender,
            "occupation": user.occupation, "zip_code": user.zip_code,
            "history": list(user.history),
            "genre_affinity": None if user.genre_affinity is None else list(user.genre_affinity),
            "n_events": user.n_events, "rating_sum": user.rating_sum,
            "n_ratings": user.n_ratings, "last_event_ts": user.last_event_ts,
        },
        "items": {  # orjson writes numpy arrays natively, but only C-contiguous ones
            "item_ids": items.item_ids, "genre_mask": np.ascontiguousarray(items.genre_mask),
            "release_year": np.ascontiguousarray(items.release_year),
            "counts": np.ascontiguousarray(items.counts),
            "like_count": np.ascontiguousarray(items.like_count),
            "rating_count": np.ascontiguousarray(items.rating_count),
        },
        "weights": weights,
    }  # fmt: skip


def encode_scores(s: Scores) -> dict[str, Any]:
    """Blended score and head scores."""
    return {"score": s.score, "heads": s.heads, "model_version": s.model_version}


def decode_scores(d: dict[str, Any]) -> Scores:
    """Inverse of :func:`encode_scores`."""
    heads = {h: np.asarray(v, dtype=np.float32) for h, v in d["heads"].items()}
    return Scores(np.asarray(d["score"], dtype=np.float32), heads, str(d.get("model_version", "")))


# ---- re-ranking -------------------------------------------------------------------------------


class RerankBody(_Body):
    """POST /v1/rerank: the top ranked items and the knobs."""

    item_ids: list[str] = Field(max_length=MAX_ITEMS)
    score: list[float]
    genre_mask: list[int]
    added_ts: list[float]
    impressions: list[int]
    k: int = Field(ge=1, le=1000)
    now: float = Field(gt=0)
    seed: int = Field(default=0, ge=0, lt=2**64)
    tunables: Tunables = DEFAULT_TUNABLES

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _same_length(
            "item_ids", len(self.item_ids), score=self.score, genre_mask=self.genre_mask,
            added_ts=self.added_ts, impressions=self.impressions,
        )  # fmt: skip
        return self

    def to_input(self) -> RerankInput:
        """The re-rank chain's input."""
        return RerankInput(
            item_ids=self.item_ids, score=np.asarray(self.score, dtype=np.float32),
            genre_mask=np.asarray(self.genre_mask, dtype=np.int64),
            added_ts=np.asarray(self.added_ts, dtype=np.float64),
            impressions=np.asarray(self.impressions, dtype=np.int64),
            k=self.k, now=self.now, seed=self.seed, tunables=self.tunables,
        )  # fmt: skip


def encode_rerank_input(inp: RerankInput) -> dict[str, Any]:
    """The request body of POST /v1/rerank (tunables only when not the defaults)."""
    body: dict[str, Any] = {
        "item_ids": inp.item_ids, "score": inp.score, "genre_mask": inp.genre_mask,
        "added_ts": inp.added_ts, "impressions": inp.impressions, "k": inp.k, "now": inp.now,
        "seed": inp.seed,
    }  # fmt: skip
    if inp.tunables != DEFAULT_TUNABLES:
        body["tunables"] = inp.tunables.model_dump(exclude_defaults=True)
    return body


def encode_reranked(r: Reranked) -> dict[str, Any]:
    """The served rows with their scores, propensities and adjustments."""
    return {
        "rows": r.rows, "score": r.score, "propensity": r.propensity, "explored": r.explored,
        "adjustments": r.adjustments, "applied": r.applied,
    }  # fmt: skip


def decode_reranked(d: dict[str, Any]) -> Reranked:
    """Inverse of :func:`encode_reranked`."""
    return Reranked(
        rows=np.asarray(d["rows"], dtype=np.int64),
        score=np.asarray(d["score"], dtype=np.float32),
        propensity=np.asarray(d["propensity"], dtype=np.float32),
        explored=np.asarray(d["explored"], dtype=bool),
        adjustments={n: np.asarray(v, dtype=np.float32) for n, v in d["adjustments"].items()},
        applied=list(d["applied"]),
    )
