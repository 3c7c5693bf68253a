"""Candidate generation in-process: each source (quota knob, deadline, fail-open), the merge
with provenance columns and its cap, cold start, the stage's info, knobs per variant and the
stage's wire form (synthetic bundle, in-memory store)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.candidate_generation.merge import Merge, MergeKnobs
from services.candidate_generation.pipeline import SOURCES, build_candidate_generation
from services.candidate_generation.sources import (
    EaseSource,
    FreshItemsSource,
    ItemToItemSource,
    SegmentPopularSource,
    SourceCall,
    SourceResult,
    TrendingSource,
    TwoTowerSource,
)
from services.candidate_generation.sources.two_tower_source import TwoTowerKnobs
from services.candidate_generation.stage import CandidateGenerationStage
from shared.features import GENRES, UserFeatures
from shared.frame import Frame
from shared.models.bundle import load_bundle
from shared.models.item_item import SparseItemItem
from shared.models.onnx_model import ModelLoadError
from shared.online_store.types import ItemRecord, UserState
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.context import RequestContext, VariantSpec
from shared.pipeline.knobs import KnobError, convert_knobs
from shared.pipeline.stage import StageCodec
from shared.platform.fast_routes import JSON, MSGPACK
from tests.integration.serving_fixtures import (
    MemoryStore,
    catalog,
    context,
    load_models,
    user_state,
    write_synthetic_bundle,
)

NOW = 1_700_000_000.0
ITEMS = catalog(300, added_ts=NOW - 30 * 86_400)
COLD_START = {"fresh_items", "segment_popular", "trending"}
FRESH = [ItemRecord(f"new{i}", genres=("Drama",), added_ts=NOW - i * 3600) for i in range(5)]
STORE_READS = {
    "fresh_items": "fresh_items",
    "segment_popular": "popular_in_segment",
    "trending": "trending",
}  # source -> the store read it makes
GENEROUS_MS = 5000.0  # functional tests on a busy machine: no source misses by accident


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    bundle = write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS)
    return load_models(bundle, ("user_tower", "item_index"), "retrieval")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(ITEMS)


def genre_lover(genre: str, history: tuple[str, ...] = (), user_id: str = "u1") -> UserState:
    affinity = [1.0 if g == genre else 0.0 for g in GENRES]
    return user_state(user_id, history, age=30, gender="F", genre_affinity=affinity)


def call(store: Any, models: Any, state: UserState) -> SourceCall:
    """What the stage hands every source for a request by ``state``'s user."""
    ctx: RequestContext = context(state, now=NOW)
    return SourceCall(ctx, ctx.user.features(), models.get(), store)


def genres_of(item_ids: list[str]) -> list[tuple[str, ...]]:
    by_id = {r.item_id: r.genres for r in ITEMS}
    return [by_id[i] for i in item_ids]


def budget(**sources_ms: float) -> LatencyBudget:
    """Generous deadlines for every source but the ones given."""
    return LatencyBudget(sources={cls.name: GENEROUS_MS for cls in SOURCES} | sources_ms)


def stage(store: Any, models: Any, **sources_ms: float) -> CandidateGenerationStage:
    return build_candidate_generation(store, models, budget(**sources_ms))


def found_by(frame: Frame, source: str) -> list[str]:
    """Ids whose ``source_<source>`` column is set (the source found them)."""
    col = frame[f"source_{source}"]
    return [i for i, v in zip(frame.ids, col.tolist(), strict=True) if not np.isnan(v)]


# ---- each source -------------------------------------------------------------------------


async def test_two_tower_retrieves_the_users_genre_within_quota(store: Any, models: Any) -> None:
    src = TwoTowerSource()
    res = await src.fetch(call(store, models, genre_lover("Comedy")), src.Knobs(quota=40))
    assert len(res.item_ids) == 40 and res.error is None
    assert len(set(res.item_ids)) == 40
    assert np.all(np.diff(res.scores) <= 1e-6)  # best first
    comedy_share = np.mean(["Comedy" in g for g in genres_of(res.item_ids[:20])])
    base_share = np.mean(["Comedy" in r.genres for r in ITEMS])
    assert comedy_share > 2 * base_share  # personalised: the tower points at the genre
    fewer = await src.fetch(call(store, models, genre_lover("Comedy")), src.Knobs(quota=7))
    assert fewer.item_ids == res.item_ids[:7]  # the quota knob cuts the same ranking


async def test_profile_only_user_is_embedded_without_history(store: Any, models: Any) -> None:
    """Cold start: a user with a profile and no history still gets two-tower candidates."""
    new_user = UserState(UserFeatures(user_id="new", age=25, gender="M"), known=True)
    res = await TwoTowerSource().fetch(
        call(store, models, new_user), TwoTowerSource.Knobs(quota=50)
    )
    assert len(res.item_ids) == 50 and np.all(np.isfinite(res.scores))


async def test_item_to_item_neighbours_exclude_the_query_items(store: Any, models: Any) -> None:
    src = ItemToItemSource()
    knobs = src.Knobs(quota=25, recent=3, per_item=10)
    history = ("1", "2", "3", "4")
    res = await src.fetch(call(store, models, genre_lover("Drama", history)), knobs)
    assert 0 < len(res.item_ids) <= 25
    assert not set(res.item_ids) & set(history[-3:])
    assert len(set(res.item_ids)) == len(res.item_ids)
    index = models.get().index
    emb = index.embeddings(list(history[-3:]))
    best = (index.embeddings(res.item_ids) @ emb.T).max(axis=1)
    np.testing.assert_allclose(best, res.scores, atol=1e-4)  # score: best cosine to a recent item
    empty = await src.fetch(call(store, models, genre_lover("Drama")), knobs)
    assert empty.item_ids == [] and empty.error is None


async def test_ease_sums_the_shipped_weights_over_the_whole_history(
    store: Any, models: Any
) -> None:
    src = EaseSource()
    history = tuple(str(i) for i in range(1, 61))  # longer than the towers' 50
    res = await src.fetch(call(store, models, genre_lover("Drama", history)), src.Knobs(quota=30))
    assert 0 < len(res.item_ids) <= 30 and res.error is None
    assert not set(res.item_ids) & set(history)
    assert np.all(np.diff(res.scores) <= 0)  # best first
    w, index = models.get().item_item, models.get().index
    full = np.zeros((w.n_items, w.n_items))  # by hand: the dense weights, summed over history
    full[np.repeat(np.arange(w.n_items), np.diff(w.indptr)), w.indices] = w.data
    dense = full[index.rows(list(history))].sum(axis=0)
    np.testing.assert_allclose(res.scores, dense[index.rows(res.item_ids)], atol=1e-5)
    assert (
        dense[index.rows(res.item_ids)].min()
        >= np.delete(dense, index.rows(list(history) + res.item_ids)).max() - 1e-6
    )  # nothing better was left out
    first = await src.fetch(call(store, models, genre_lover("Drama", history[:1])), src.Knobs())
    row = index.rows(["1"])[0]  # one history item: its shipped neighbours of positive weight
    assert len(first.item_ids) == int((w.data[w.indptr[row] : w.indptr[row + 1]] > 0).sum()) > 0


async def test_every_candidate_gets_its_ease_score_from_the_whole_stored_history(
    store: Any, models: Any
) -> None:
    history = tuple(str(i) for i in range(1, 81))  # longer than the towers' 50
    result = await stage(store, models).run(
        context(genre_lover("Drama", history), now=NOW), Frame([])
    )
    frame = result.frame
    w, index = models.get().item_item, models.get().index
    full = np.zeros((w.n_items, w.n_items))  # by hand: the dense weights, summed over history
    full[np.repeat(np.arange(w.n_items), np.diff(w.indptr)), w.indices] = w.data
    dense = full[index.rows(list(history))].sum(axis=0)
    np.testing.assert_allclose(frame["ease_score"], dense[index.rows(frame.ids)], atol=1e-5)
    ease_found = ~np.isnan(frame["source_ease"])  # the source's own scores are the same sums
    np.testing.assert_allclose(frame["ease_score"][ease_found], frame["source_ease"][ease_found])
    assert (frame["ease_score"][~ease_found] != 0).any()  # other sources' items are scored too
    cold = await stage(store, models).run(context(genre_lover("Drama", ()), now=NOW), Frame([]))
    assert np.all(cold.frame["ease_score"] == 0)


async def test_two_tower_quota_is_spent_outside_the_history(store: Any, models: Any) -> None:
    src = TwoTowerSource()
    history = tuple(str(i) for i in range(1, 41))
    res = await src.fetch(call(store, models, genre_lover("Drama", history)), src.Knobs(quota=30))
    assert len(res.item_ids) == 30 and not set(res.item_ids) & set(history)
    bare = await src.fetch(call(store, models, genre_lover("Drama", history)), src.Knobs(quota=70))
    unseen = [i for i in bare.item_ids if i not in history]
    assert res.item_ids == unseen[:30]  # the ANN's order, history dropped


async def test_ease_without_weights_fails_open(store: Any, models: Any) -> None:
    c = call(store, models, genre_lover("Drama", ("1",)))
    c.bundle = dataclasses.replace(c.bundle, item_item=None)
    res = await EaseSource().fetch(c, EaseSource.Knobs())
    assert res.item_ids == [] and "item_item.npz" in (res.error or "")


def test_bundle_refuses_item_item_weights_of_another_catalogue(tmp_path: Path) -> None:
    folder = write_synthetic_bundle(tmp_path, ITEMS[:50]) / "item_index"
    empty = np.zeros(0)
    SparseItemItem(np.zeros(50, np.int64), empty.astype(np.int32), empty.astype(np.float32)).save(
        folder
    )
    with pytest.raises(ModelLoadError, match="49 rows for 50 items"):
        load_bundle({"item_index": folder}, ["item_index"])


async def test_fresh_items_are_recent_and_newest_first(models: Any) -> None:
    fresh = [ItemRecord(f"new{i}", genres=("Drama",), added_ts=NOW - i * 3600) for i in range(5)]
    old = [ItemRecord("old", genres=("Drama",), added_ts=NOW - 30 * 86_400)]
    store = MemoryStore(fresh + old)
    src = FreshItemsSource()
    res = await src.fetch(
        call(store, models, user_state("u")), src.Knobs(quota=3, max_age_s=86_400)
    )
    assert res.item_ids == ["new0", "new1", "new2"]
    assert res.scores[0] == pytest.approx(1.0) and np.all(np.diff(res.scores) < 0)
    everything = await src.fetch(call(store, models, user_state("u")), src.Knobs(quota=10))
    assert "old" not in everything.item_ids and len(everything.item_ids) == 5  # 7 days by default


async def test_segment_popular_uses_the_segment_then_everyone(models: Any) -> None:
    store = MemoryStore(ITEMS)
    store.segments = {"25-34|f": [("7", 9.0), ("8", 5.0)], "all": [("1", 99.0), ("2", 50.0)]}
    src = SegmentPopularSource()
    mine = UserState(UserFeatures("a"), True, segment="25-34|f")
    res = await src.fetch(call(store, models, mine), src.Knobs())
    assert res.item_ids == ["7", "8"]
    unknown = await src.fetch(call(store, models, UserState(UserFeatures("b"))), src.Knobs())
    assert unknown.item_ids == ["1", "2"] and unknown.scores.tolist() == [99.0, 50.0]
    one = await src.fetch(call(store, models, mine), src.Knobs(quota=1))
    assert one.item_ids == ["7"]


async def test_trending_respects_quota(store: Any, models: Any) -> None:
    src = TrendingSource()
    res = await src.fetch(call(store, models, user_state("u")), src.Knobs(quota=12))
    assert res.item_ids == [p[0] for p in store._top(12)]
    assert res.scores.tolist() == [p[1] for p in store._top(12)]


def test_quota_knobs_are_bounded() -> None:
    for src in SOURCES:
        assert src.Knobs().quota >= 1
        with pytest.raises(KnobError, match="quota"):
            convert_knobs(src.Knobs, {"quota": 0}, ("variant", "knobs", src.name))


# ---- the merge ---------------------------------------------------------------------------


def test_merge_keeps_provenance_and_dedupes() -> None:
    a = SourceResult("a", ["1", "2", "3"], np.array([0.9, 0.8, 0.7], np.float32))
    b = SourceResult("b", ["3", "4", "1", "4"], np.array([5.0, 4.0, 3.0, 2.0], np.float32))
    m = Merge().merge([a, b], MergeKnobs(max_candidates=100))
    assert m.ids == ["1", "2", "3", "4"]  # first source first, no duplicates
    assert m["source_a"].dtype == np.float32 and m["source_b"].dtype == np.float32
    np.testing.assert_allclose(m["source_a"], [0.9, 0.8, 0.7, np.nan])  # NaN: not found by a
    # a source listing an item twice keeps its first (best) score: "4" is 4.0, not 2.0
    np.testing.assert_allclose(m["source_b"], [3.0, np.nan, 5.0, 4.0])


def test_merge_of_nothing_is_an_empty_frame() -> None:
    failed = SourceResult.failed("a", "boom")
    m = Merge().merge([failed], MergeKnobs())
    assert len(m) == 0 and m["source_a"].shape == (0,)


def test_merge_cap_cuts_the_primary_tail_first() -> None:
    primary = SourceResult("two_tower", [str(i) for i in range(20)], np.linspace(1, 0, 20))
    small = SourceResult("trending", ["t1", "t2", "19"], np.ones(3, np.float32))
    m = Merge().merge([primary, small], MergeKnobs(max_candidates=12))
    assert len(m) == 12
    assert {"t1", "t2", "19"} <= set(m.ids)  # the smaller source keeps its share
    assert m.ids[:9] == [str(i) for i in range(9)]  # the primary loses its tail, not its head
    row = m.ids.index("19")  # found by both: kept, with both scores
    assert (m["source_two_tower"][row], m["source_trending"][row]) == (0.0, 1.0)


def test_merge_cap_is_a_bounded_knob() -> None:
    with pytest.raises(KnobError, match=">= 10"):
        convert_knobs(MergeKnobs, {"max_candidates": 5}, ("variant", "knobs", "merge"))


# ---- the stage ---------------------------------------------------------------------------


async def test_known_user_gets_every_source_merged_with_provenance(store: Any, models: Any) -> None:
    gen = stage(store, models)
    result = await gen.run(context(genre_lover("Comedy", ("1", "2")), now=NOW), Frame([]))
    frame, info = result.frame, result.info
    assert list(info.sources) == [cls.name for cls in SOURCES]  # every source, declared order
    assert all(st.error is None for st in info.sources.values()), info.sources
    assert set(frame) == {f"source_{cls.name}" for cls in SOURCES} | {"ease_score"}
    assert 0 < len(frame) <= MergeKnobs().max_candidates and len(set(frame.ids)) == len(frame)
    quotas = {s.name: s.Knobs().quota for s in gen.sources}
    for name, st in info.sources.items():
        assert st.n <= quotas[name] and st.ms >= 0
        assert len(found_by(frame, name)) == st.n  # each source's items carry its score
    assert found_by(frame, "trending") == [i for i in frame.ids if i in dict(store._top(50))]
    found_somewhere = np.zeros(len(frame), dtype=bool)
    for name in frame:
        found_somewhere |= ~np.isnan(frame[name])
    assert found_somewhere.all()  # no row without a source
    assert frame.ids[: info.sources["two_tower"].n] == found_by(frame, "two_tower")  # primary first


async def test_info_names_the_retrieval_models(store: Any, models: Any) -> None:
    result = await stage(store, models).run(context(genre_lover("Drama"), now=NOW), Frame([]))
    assert set(result.info.models) == {"user_tower", "item_index"}
    for part, label in result.info.models.items():
        assert part in label and label.endswith("(@production)")


async def test_unknown_user_gets_only_the_cold_start_sources(store: Any, models: Any) -> None:
    unknown = UserState(UserFeatures(user_id="nobody"), known=False)
    result = await stage(store, models).run(context(unknown, now=NOW), Frame([]))
    assert set(result.info.sources) == COLD_START
    assert set(result.frame) == {f"source_{name}" for name in COLD_START} | {"ease_score"}
    assert np.all(result.frame["ease_score"] == 0)  # no history: EASE scores nothing
    assert len(result.frame) > 0
    assert set(result.frame.ids) == {i for i, _ in store._top(50)}  # fresh finds nothing here


@pytest.mark.parametrize("mode", ["fail", "hang"])
@pytest.mark.parametrize("source", list(STORE_READS))
async def test_a_source_fails_open_when_its_store_read_fails_or_hangs(
    models: Any, source: str, mode: str
) -> None:
    store = MemoryStore([*ITEMS, *FRESH])
    method = STORE_READS[source]
    if mode == "fail":
        store.fail = {method}
    else:
        store.delay_s = {method: 30.0}  # far past its 20 ms deadline
    gen = stage(store, models, **{source: 20})
    result = await gen.run(context(genre_lover("Comedy", ("1", "2")), now=NOW), Frame([]))
    sources = result.info.sources
    expected = "timeout after 20 ms" if mode == "hang" else f"{method}: store unavailable"
    assert expected in (sources[source].error or "") and sources[source].n == 0
    assert found_by(result.frame, source) == []
    others = [name for name in sources if name != source]
    assert all(sources[n].error is None and sources[n].n > 0 for n in others), sources
    found = set().union(*(found_by(result.frame, n) for n in others))
    assert set(result.frame.ids) == found  # what the working sources found, nothing lost


async def test_a_broken_source_does_not_fail_the_request(store: Any, models: Any) -> None:
    class Broken(TrendingSource):
        name = "broken"
        provides = ("source_broken",)

        async def fetch(self, call: SourceCall, knobs: Any) -> SourceResult:
            raise RuntimeError("bug in a source")

    gen = CandidateGenerationStage([TrendingSource(), Broken()], store, models, budget(broken=5000))
    result = await gen.run(context(user_state("u"), now=NOW), Frame([]))
    assert result.info.sources["broken"].error == "RuntimeError: bug in a source"
    assert result.info.sources["trending"].n == 50 and len(result.frame) == 50


async def test_variant_overrides_a_sources_quota(store: Any, models: Any) -> None:
    gen = stage(store, models)
    user = genre_lover("Comedy", ("1", "2"))
    base = await gen.run(context(user, now=NOW), Frame([]))
    small = VariantSpec(name="small", knobs={"two_tower": {"quota": 20}, "trending": {"quota": 5}})
    result = await gen.run(context(user, now=NOW, variant=small), Frame([]))
    assert base.info.sources["two_tower"].n == TwoTowerKnobs().quota  # 200 of the 300 indexed
    assert result.info.sources["two_tower"].n == 20
    assert result.info.sources["trending"].n == 5
    assert set(found_by(result.frame, "trending")) == {i for i, _ in store._top(5)}
    again = await gen.run(context(user, now=NOW), Frame([]))
    assert (
        again.info.sources["two_tower"].n == TwoTowerKnobs().quota
    )  # override stays in its variant


async def test_variant_caps_the_merged_list(store: Any, models: Any) -> None:
    capped = VariantSpec(name="capped", knobs={"merge": {"max_candidates": 30}})
    user = genre_lover("Comedy", ("1", "2"))
    result = await stage(store, models).run(context(user, now=NOW, variant=capped), Frame([]))
    assert len(result.frame) == 30
    assert set(found_by(result.frame, "trending")) == {i for i, _ in store._top(50)} & set(
        result.frame.ids
    )


async def test_out_of_bounds_quota_is_refused(store: Any, models: Any) -> None:
    bad = VariantSpec(name="bad", knobs={"two_tower": {"quota": 0}})
    with pytest.raises(KnobError) as exc:
        await stage(store, models).run(context(user_state("u"), now=NOW, variant=bad), Frame([]))
    assert exc.value.loc == ("variant", "knobs", "two_tower")


def test_kill_switch_and_deadlines_from_the_budget(store: Any, models: Any) -> None:
    budget = LatencyBudget(sources={"trending": 3.0})
    gen = build_candidate_generation(store, models, budget, disabled=frozenset({"item_to_item"}))
    names = [s.name for s in gen.sources]
    assert "item_to_item" not in names and names[0] == "two_tower"
    assert "source_item_to_item" not in gen.provides()
    assert gen.deadline_s["trending"] == pytest.approx(0.003)
    assert gen.deadline_s["two_tower"] == pytest.approx(0.010)  # not in the budget: 10 ms


@pytest.mark.parametrize("ctype", [MSGPACK, JSON])
async def test_wire_reply_keeps_the_provenance(store: Any, models: Any, ctype: str) -> None:
    gen = stage(store, models)
    codec = StageCodec(gen)
    body = codec.encode_request(context(user_state("u"), now=NOW), Frame([]))
    ctx, frame = codec.decode_request(body, binary=True)
    local = await gen.run(ctx, frame)
    remote = codec.decode_reply(codec.encode_reply(local, ctype == MSGPACK), ctype, [])
    assert remote.frame.ids == local.frame.ids  # a new list: the reply carries its ids
    for name in local.frame:
        np.testing.assert_array_equal(remote.frame[name], local.frame[name])  # NaN kept
    assert remote.info == local.info
