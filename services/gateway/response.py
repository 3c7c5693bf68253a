"""The public answer of GET /v1/recommendations: its declared model and how it is built.

The pydantic models are the contract (they are the route's response schema in OpenAPI, and a
test checks real answers against that schema); the answer itself is built as plain dicts and
encoded with orjson, which costs a fraction of validating the model on every request.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from services.gateway.explain import explain
from services.gateway.request_state import RequestState
from shared.features.genre_mask import intra_list_genre_diversity, mask_to_names


class RecommendedItem(BaseModel):
    """One item of the list, as a person reads it."""

    item_id: str
    title: str = Field(description="catalog title ('' when the catalog does not know it)")
    genres: list[str]
    year: int | None = Field(description="release year, when known")
    score: float = Field(description="final score after re-ranking")
    explored: bool = Field(default=False, description="placed by an exploration slot")
    team: str | None = Field(
        default=None, description="in an interleaving experiment: the arm whose ranker put it here"
    )
    neutral: bool = Field(
        default=False,
        description="in an interleaving experiment: both rankers proposed it in the same round, "
        "so a click on it credits neither arm",
    )


class RecommendationResponse(BaseModel):
    """The list, what served it, and whether anything was degraded."""

    request_id: str
    user_id: str
    k: int
    variant: str = Field(description="the variant this request ran under")
    arms: dict[str, str] = Field(
        default_factory=dict,
        description="rollout id -> arm (production or canary) for every rollout in force, "
        "experiment id -> arm (interleaved: the list is drafted from two rankers, each item's "
        "`team` names its arm) for every experiment the user is in",
    )
    items: list[RecommendedItem]
    degraded: bool
    degraded_reasons: list[str] = Field(description="'<step>: <reason>; fallback: <what>'")
    cold_start: Literal["returning", "new_user", "unknown_user"]
    model_versions: dict[str, str] = Field(
        description="model part -> registry version, e.g. cascade-ranker/3 (@production)"
    )
    explain: dict[str, Any] | None = Field(default=None, description="with explain=true")


def served_items(req: RequestState, titles: list[str]) -> list[dict[str, Any]]:
    """The items of the answer (title, genres, year from the candidate columns)."""
    served = req.served
    if served is None or req.served_rows is None:
        return []
    rows = req.served_rows
    frame = req.frame
    masks = frame["genre_mask"][rows].tolist() if "genre_mask" in frame else [0] * len(rows)
    years = (
        frame["release_year"][rows].tolist() if "release_year" in frame else [math.nan] * len(rows)
    )
    scores = served["final_score"].tolist()
    explored = served["explored"].tolist()
    teams, neutral = req.teams(), req.neutral()
    items = []
    for i, item_id in enumerate(served.ids):
        item: dict[str, Any] = {
            "item_id": item_id, "title": titles[i], "genres": mask_to_names(masks[i]),
            "year": None if math.isnan(years[i]) else int(years[i]),
            "score": round(scores[i], 6),
        }  # fmt: skip
        if explored[i]:
            item["explored"] = True
        if teams is not None:
            item["team"] = teams[i]
        if neutral is not None and neutral[i]:
            item["neutral"] = True
        items.append(item)
    return items


def response_body(req: RequestState, titles: list[str],
                  arms: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The JSON body of the answer."""
    body: dict[str, Any] = {
        "request_id": req.request_id,
        "user_id": req.user_id,
        "k": req.k,
        "variant": req.variant.name,
        "arms": arms or {},
        "items": served_items(req, titles),
        "degraded": bool(req.run.degraded),
        "degraded_reasons": req.run.degraded,
        "cold_start": req.cold_start,
        "model_versions": req.models,
    }
    if req.explain:
        body["explain"] = explain(req)
    return body


def _teams_by_item(ids: list[str], teams: list[str] | None) -> dict[str, str] | None:
    """Item -> team of an interleaved list (what a click on the item credits)."""
    if teams is None:
        return None
    return dict(zip(ids, teams, strict=True))


def _neutral_items(ids: list[str], neutral: list[bool] | None) -> list[str] | None:
    """The items of an interleaved list whose clicks credit neither team."""
    if neutral is None:
        return None
    return [item for item, is_neutral in zip(ids, neutral, strict=True) if is_neutral]


def served_record(req: RequestState, arms: dict[str, str] | None = None,
                  latency_s: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The record logged to the ``served`` topic (columnar: one array per field).

    ``arms`` is the rollout assignment (intention to treat: a canary user answered by
    production after a canary failure stays in the canary arm, with ``canary_failure`` set)
    and the experiments' arms; ``teams`` item -> the interleaving arm that contributed it, and
    ``neutral`` the items of that list both rankers proposed in one round (credited to neither).
    A list in an arm also carries its ``genre_diversity`` (what the arm's analysis compares;
    computed only then, to keep plain requests cheap) and every record its ``latency_ms``.
    """
    served = req.served
    ids = served.ids if served is not None else []
    n = len(ids)
    zeros = np.zeros(n)
    diversity = None
    if arms and req.served_rows is not None and "genre_mask" in req.frame and n > 1:
        d = intra_list_genre_diversity(req.frame["genre_mask"][req.served_rows])
        diversity = round(d, 6) if d == d else None
    return {
        "request_id": req.request_id,
        "user_id": req.user_id,
        "ts": req.now,
        "variant": req.variant.name,
        "arms": arms or {},
        "canary_failure": req.canary_failure,
        "teams": _teams_by_item(ids, req.teams()),
        "neutral": _neutral_items(ids, req.neutral()),
        "item_ids": ids,
        "scores": np.round(served["final_score"], 6).tolist() if served else [],
        "propensity": np.round(served["propensity"], 6).tolist() if served else [],
        "explored": served["explored"].tolist() if served else zeros.astype(bool).tolist(),
        "cold_start": req.cold_start,
        "degraded": req.run.degraded,
        "model_versions": req.models,
        "genre_diversity": diversity,
        "latency_ms": None if latency_s is None else round(latency_s * 1000.0, 3),
    }
