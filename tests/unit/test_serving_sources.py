"""Candidate generation in-process: each source (quota, deadline, fail-open), the merge with
provenance, cold start, and the generator around them (synthetic bundle, in-memory store)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from services.candidate_generation.generator import CandidateGenerator
from services.candidate_generation.pipeline import SOURCES, build_generator, build_sources
from services.candidate_generation.sources import (
    FreshItemsSource,
    ItemToItemSource,
    SegmentPopularSource,
    SourceDeps,
    TrendingSource,
    TwoTowerSource,
)
from shared.features import GENRES, UserFeatures
from shared.online_store.types import ItemRecord, UserState
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.merge import merge_sources
from shared.pipeline.tunables import DEFAULT_TUNABLES, Tunables
from shared.pipeline.types import SourceResult
from tests.integration.serving_fixtures import (
    MemoryStore,
    catalog,
    load_models,
    user_state,
    write_synthetic_bundle,
)

NOW = 1_700_000_000.0
ITEMS = catalog(300, added_ts=NOW - 30 * 86_400)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_models(write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(ITEMS)


def _deps(store: MemoryStore, models: Any) -> SourceDeps:
    return SourceDeps(store, models.require)


def _genre_lover(genre: str, history: tuple[str, ...] = ()) -> UserState:
    affinity = [1.0 if g == genre else 0.0 for g in GENRES]
    return user_state("u1", history, age=30, gender="F", genre_affinity=affinity)


def _genres_of(item_ids: list[str]) -> list[tuple[str, ...]]:
    by_id = {r.item_id: r.genres for r in ITEMS}
    return [by_id[i] for i in item_ids]


async def test_two_tower_retrieves_the_users_genre_within_quota(store: Any, models: Any) -> None:
    src = TwoTowerSource(_deps(store, models), quota=40, timeout_s=1.0)
    res = await src.fetch(_genre_lover("Comedy"), NOW, DEFAULT_TUNABLES)
    assert len(res.item_ids) == 40 and res.error is None
    assert np.all(np.diff(res.scores) <= 1e-6)  # best first
    comedy_share = np.mean(["Comedy" in g for g in _genres_of(res.item_ids[:20])])
    base_share = np.mean(["Comedy" in r.genres for r in ITEMS])
    assert comedy_share > 2 * base_share  # personalised: the tower points at the genre
    fewer = await src.fetch(_genre_lover("Comedy"), NOW, Tunables(ann_top_n=7))
    assert len(fewer.item_ids) == 7  # N is a tunable, capped by the quota


async def test_profile_only_user_is_embedded_without_history(store: Any, models: Any) -> None:
    """Cold start: a user with a profile and no history still gets two-tower candidates."""
    src = TwoTowerSource(_deps(store, models), quota=50, timeout_s=1.0)
    new_user = UserState(UserFeatures(user_id="new", age=25, gender="M"), known=True)
    res = await src.fetch(new_user, NOW, DEFAULT_TUNABLES)
    assert len(res.item_ids) == 50


async def test_item_to_item_neighbours_exclude_the_query_items(store: Any, models: Any) -> None:
    src = ItemToItemSource(_deps(store, models), quota=25, timeout_s=1.0, recent=3, per_item=10)
    history = ("1", "2", "3", "4")
    res = await src.fetch(_genre_lover("Drama", history), NOW, DEFAULT_TUNABLES)
    assert 0 < len(res.item_ids) <= 25
    assert not set(res.item_ids) & set(history[-3:])
    assert len(set(res.item_ids)) == len(res.item_ids)
    index = models.require().index
    emb = index.embeddings(list(history[-3:]))
    best = (index.embeddings(res.item_ids) @ emb.T).max(axis=1)
    np.testing.assert_allclose(best, res.scores, atol=1e-4)  # score: best cosine to a recent item
    empty = await src.fetch(_genre_lover("Drama"), NOW, DEFAULT_TUNABLES)
    assert empty.item_ids == []


async def test_fresh_items_are_recent_and_newest_first(models: Any) -> None:
    fresh = [ItemRecord(f"new{i}", genres=("Drama",), added_ts=NOW - i * 3600) for i in range(5)]
    old = [ItemRecord("old", genres=("Drama",), added_ts=NOW - 30 * 86_400)]
    src = FreshItemsSource(_deps(MemoryStore(fresh + old), models), 3, 1.0, max_age_s=86_400)
    res = await src.fetch(user_state("u"), NOW, DEFAULT_TUNABLES)
    assert res.item_ids == ["new0", "new1", "new2"]
    assert res.scores[0] == pytest.approx(1.0) and np.all(np.diff(res.scores) < 0)


async def test_segment_popular_uses_the_segment_then_everyone(models: Any) -> None:
    store = MemoryStore(ITEMS)
    store.segments = {"25-34|f": [("7", 9.0), ("8", 5.0)], "all": [("1", 99.0), ("2", 50.0)]}
    src = SegmentPopularSource(_deps(store, models), quota=10, timeout_s=1.0)
    mine = await src.fetch(
        UserState(UserFeatures("a"), True, segment="25-34|f"), NOW, DEFAULT_TUNABLES
    )
    assert mine.item_ids == ["7", "8"]
    unknown = await src.fetch(UserState(UserFeatures("b")), NOW, DEFAULT_TUNABLES)
    assert unknown.item_ids == ["1", "2"] and unknown.scores.tolist() == [99.0, 50.0]


async def test_trending_respects_quota(store: Any, models: Any) -> None:
    res = await TrendingSource(_deps(store, models), 12, 1.0).fetch(
        user_state("u"), NOW, DEFAULT_TUNABLES
    )
    assert res.item_ids == [p[0] for p in store._top(12)]


def test_merge_keeps_provenance_and_dedupes() -> None:
    a = SourceResult("a", ["1", "2", "3"], np.array([0.9, 0.8, 0.7], np.float32))
    b = SourceResult("b", ["3", "4", "1", "4"], np.array([5.0, 4.0, 3.0, 2.0], np.float32))
    m = merge_sources([a, b], max_candidates=100)
    assert m.item_ids == ["1", "2", "3", "4"]  # first source first, no duplicates
    assert m.sources_of(0) == {"a": pytest.approx(0.9), "b": pytest.approx(3.0)}
    assert m.sources_of(2) == {"a": pytest.approx(0.7), "b": pytest.approx(5.0)}
    assert m.sources_of(3) == {"b": pytest.approx(4.0)}  # a source's duplicate keeps its best
    assert m.status["b"].n == 4


def test_merge_cap_cuts_the_primary_tail_first() -> None:
    primary = SourceResult("two_tower", [str(i) for i in range(10)], np.linspace(1, 0, 10))
    small = SourceResult("trending", ["t1", "t2", "9"], np.ones(3, np.float32))
    m = merge_sources([primary, small], max_candidates=6)
    assert len(m) == 6
    assert {"t1", "t2", "9"} <= set(m.item_ids)  # the smaller source keeps its share
    assert m.item_ids[:3] == ["0", "1", "2"]  # the primary loses its tail, not its head
    assert m.sources_of(m.item_ids.index("9")) == {"two_tower": 0.0, "trending": 1.0}


class _Slow:
    """A source that sleeps past its deadline."""

    name = "slow"
    quota = 5
    timeout_s = 0.02
    serves_unknown_users = True

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        await asyncio.sleep(1.0)
        return SourceResult(self.name, ["x"], np.ones(1, np.float32))


async def test_generator_fails_open_per_source(store: MemoryStore, models: Any) -> None:
    deps = _deps(store, models)
    sources = [TrendingSource(deps, 10, 1.0), _Slow(), SegmentPopularSource(deps, 10, 1.0)]
    store.fail = {"popular_in_segment"}
    start = time.perf_counter()
    cands = await CandidateGenerator(sources, store).generate(
        "u1", NOW, DEFAULT_TUNABLES, _ready(user_state("u1"))
    )
    assert time.perf_counter() - start < 0.5  # the slow source's deadline, not its 1 s
    assert cands.status["slow"].error == "timeout after 20 ms"
    assert "store unavailable" in (cands.status["segment_popular"].error or "")
    assert cands.status["trending"].error is None and len(cands) == 10


async def _ready(state: UserState) -> UserState:
    return state


async def test_unknown_user_gets_only_the_cold_start_sources(store: Any, models: Any) -> None:
    gen = build_generator(_deps(store, models), LatencyBudget())
    cands = await gen.generate("nobody", NOW, DEFAULT_TUNABLES)
    assert set(cands.status) == {"fresh_items", "segment_popular", "trending"}
    assert len(cands) > 0
    store.users["u1"] = _genre_lover("Comedy", ("1", "2"))
    known = await gen.generate("u1", NOW, DEFAULT_TUNABLES)
    assert {"two_tower", "item_to_item"} <= set(known.status)
    assert len(known) <= DEFAULT_TUNABLES.max_candidates
    per_source = {spec.cls.name: spec.quota for spec in SOURCES}
    assert all(st.n <= per_source[name] for name, st in known.status.items())


async def test_failed_user_read_serves_an_unknown_user(store: MemoryStore, models: Any) -> None:
    store.fail = {"get_user"}
    cands = await build_generator(_deps(store, models), LatencyBudget()).generate(
        "u1", NOW, DEFAULT_TUNABLES
    )
    assert "store unavailable" in (cands.status["user_state"].error or "")
    assert cands.status["trending"].n > 0 and "two_tower" not in cands.status


def test_kill_switch_and_deadlines_from_the_budget(store: Any, models: Any) -> None:
    budget = LatencyBudget(sources={"trending": 3.0})
    built = build_sources(_deps(store, models), budget, disabled=frozenset({"item_to_item"}))
    names = [s.name for s in built]
    assert "item_to_item" not in names and names[0] == "two_tower"
    assert next(s for s in built if s.name == "trending").timeout_s == pytest.approx(0.003)
