"""Re-ranking in-process: MMR's diversity effect (intra-list similarity drops), the genre cap,
freshness boost, exploration slots with their propensities, fatigue, and the stage around
them (order, explanations, knobs per variant, the served list on the wire)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from services.reranking.pipeline import RERANKERS, build_reranking
from services.reranking.rerank_state import RerankState
from services.reranking.rerankers import (
    ExplorationReranker,
    FatigueReranker,
    FreshnessReranker,
    MMRReranker,
)
from services.reranking.rerankers.exploration_reranker import ExplorationKnobs
from services.reranking.rerankers.fatigue_reranker import FatigueKnobs
from services.reranking.rerankers.freshness_reranker import FreshnessKnobs
from services.reranking.rerankers.mmr_reranker import MMRKnobs, similarity
from shared.features.genre_mask import genre_mask, mask_to_multi_hot
from shared.frame import Frame
from shared.pipeline.context import RequestContext, UserContext, VariantSpec
from shared.pipeline.knobs import KnobError
from shared.pipeline.stage import StageCodec
from shared.platform.fast_routes import JSON, MSGPACK

NOW = 1_700_000_000.0
NO_EXPLORATION = {"exploration": {"slots": 0}}


def make_frame(
    genres: Sequence[tuple[str, ...]], score: list[float] | None = None, **cols: Any
) -> Frame:
    """Ranked items ``i0``, ``i1``, ... with the columns the re-rankers read."""
    n = len(genres)
    return Frame(
        [f"i{j}" for j in range(n)],
        {
            "score": np.asarray(score if score is not None else np.linspace(1, 0.5, n), np.float32),
            "genre_mask": np.array([genre_mask(g) for g in genres], dtype=np.int64),
            "added_ts": np.asarray(cols.get("added_ts", np.zeros(n)), np.float64),
            "impressions": np.asarray(cols.get("impressions", np.zeros(n)), np.int64),
        },
    )


def context(k: int = 5, seed: int = 1, knobs: dict[str, Any] | None = None) -> RequestContext:
    """A request for ``k`` items under a variant with ``knobs`` (production when None)."""
    variant = VariantSpec(name="test", knobs=knobs) if knobs is not None else VariantSpec()
    user = UserContext(user_id="u", known=True)
    return RequestContext(request_id="t", now=NOW, user=user, k=k, seed=seed, variant=variant)


async def served(frame: Frame, k: int, knobs: dict[str, Any] | None = None, seed: int = 1) -> Frame:
    """The served list of the declared re-ranking stage (no embeddings: genres only)."""
    result = await build_reranking(None).run(context(k, seed, knobs), frame)
    return result.frame


def clustered_embeddings(n_similar: int, n: int, dim: int = 8) -> np.ndarray:
    """The first ``n_similar`` items almost identical, the rest spread out."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, dim))
    emb[:n_similar] = emb[0] + 0.01 * rng.normal(size=(n_similar, dim))
    unit: np.ndarray = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    return unit


def intra_list_similarity(frame: Frame, rows: np.ndarray, emb: np.ndarray) -> float:
    """Mean pairwise similarity of the served items (the measure MMR is meant to lower)."""
    sim = similarity(mask_to_multi_hot(frame["genre_mask"][rows]), emb[rows], 0.5)
    k = len(rows)
    return float((sim.sum() - np.trace(sim)) / (k * (k - 1)))


def mmr_pick(frame: Frame, emb: np.ndarray, k: int, lam: float) -> RerankState:
    state = RerankState(frame, k, NOW, 1, lambda ids: emb[[int(i[1:]) for i in ids]])
    MMRReranker().rerank(state, MMRKnobs(lambda_=lam, genre_cap=10))
    return state


def explore(seed: int, rate: float = 1.0, slots: int = 1) -> tuple[RerankState, list[int]]:
    """Exploration alone over 40 equal items, k 10, the list so far being rows 0..9."""
    state = RerankState(make_frame([("Drama",)] * 40), 10, NOW, seed)
    state.order = np.arange(10)
    ExplorationReranker().rerank(state, ExplorationKnobs(slots=slots, rate=rate, pool=20))
    assert state.order is not None
    return state, state.order.tolist()


DIVERSE = [("Drama",)] * 10 + [
    (g,) for g in ("Comedy", "Action", "Horror", "Sci-Fi", "Western")
] * 4


# ---- MMR ---------------------------------------------------------------------------------


def test_mmr_lowers_intra_list_similarity() -> None:
    frame = make_frame(DIVERSE)
    emb = clustered_embeddings(10, len(DIVERSE))
    state = mmr_pick(frame, emb, k=6, lam=0.5)
    assert state.order is not None
    top_k = np.arange(6)  # by score: the six similar Dramas
    assert state.order[0] == 0  # the best item still leads
    assert intra_list_similarity(frame, state.order, emb) < 0.5 * intra_list_similarity(
        frame, top_k, emb
    )
    assert len(set(state.order.tolist())) == 6
    assert np.all(state.adjustments["mmr_redundancy"] <= 0)  # explained per item
    assert np.any(state.adjustments["mmr_redundancy"] < 0)
    pure = mmr_pick(frame, emb, k=6, lam=1.0)
    assert pure.order is not None and pure.order.tolist() == top_k.tolist()  # relevance only


async def test_variant_spells_the_mmr_lambda_as_lambda() -> None:
    frame = make_frame(DIVERSE)
    relevance = await served(frame, 6, {**NO_EXPLORATION, "mmr": {"lambda": 1.0, "genre_cap": 10}})
    diverse = await served(frame, 6, {**NO_EXPLORATION, "mmr": {"lambda": 0.3, "genre_cap": 10}})
    assert relevance["row"].tolist() == list(range(6))
    dramas = sum(DIVERSE[r] == ("Drama",) for r in diverse["row"].tolist())
    assert dramas < 6 and diverse["row"][0] == 0


async def test_genre_cap_yields_only_when_nothing_else_is_left() -> None:
    genres = [("Drama",)] * 12 + [("Comedy",)] * 2
    knobs = {**NO_EXPLORATION, "mmr": {"genre_cap": 3, "lambda": 1.0}}
    out = await served(make_frame(genres), 6, knobs)
    # 3 Dramas, both Comedies, then the cap yields
    assert Counter(genres[r][0] for r in out["row"].tolist()) == {"Drama": 4, "Comedy": 2}
    out = await served(make_frame(genres), 5, knobs)
    assert Counter(genres[r][0] for r in out["row"].tolist()) == {"Drama": 3, "Comedy": 2}


# ---- freshness and fatigue ---------------------------------------------------------------


async def test_freshness_boost_halves_every_half_life() -> None:
    added = [NOW, NOW - 24 * 3600, 0.0]
    frame = make_frame([("Drama",)] * 3, score=[0.5, 0.5, 0.5], added_ts=added)
    state = RerankState(frame, 3, NOW, 1)
    FreshnessReranker().rerank(state, FreshnessKnobs(boost=0.2, half_life_h=24.0))
    # brand new: the full boost; one half-life old: half; an unknown added time: none
    np.testing.assert_allclose(state.adjustments["freshness"], [0.2, 0.1, 0.0], atol=1e-6)
    np.testing.assert_allclose(state.score, [0.7, 0.6, 0.5], atol=1e-6)
    added = [NOW - 365 * 86_400, NOW]
    old_vs_new = make_frame([("Drama",), ("Comedy",)], score=[0.55, 0.5], added_ts=added)
    out = await served(old_vs_new, 2, NO_EXPLORATION)
    assert out["row"].tolist() == [1, 0]  # the brand-new item overtakes a slightly better old one
    assert out["adjust_freshness"][0] > 0.05 > out["adjust_freshness"][1]


async def test_fatigue_drops_over_shown_items_and_penalises_the_rest() -> None:
    frame = make_frame([("Drama",)] * 4, score=[0.9, 0.8, 0.7, 0.6], impressions=[3, 1, 0, 5])
    state = RerankState(frame, 4, NOW, 1)
    FatigueReranker().rerank(state, FatigueKnobs(max_impressions=3, penalty=0.1))
    assert state.active.tolist() == [False, True, True, False]
    np.testing.assert_allclose(state.score, [0.6, 0.7, 0.7, 0.1], atol=1e-6)
    out = await served(frame, 4, NO_EXPLORATION)  # production: 3 impressions, 0.1 each
    assert sorted(out["row"].tolist()) == [1, 2]  # never shown again within the limit
    np.testing.assert_allclose(sorted(out["adjust_fatigue"].tolist()), [-0.1, 0.0], atol=1e-6)


async def test_variant_raises_the_fatigue_limit() -> None:
    frame = make_frame([("Drama",)] * 4, score=[0.9, 0.8, 0.7, 0.6], impressions=[3, 1, 0, 5])
    out = await served(frame, 4, {**NO_EXPLORATION, "fatigue": {"max_impressions": 10}})
    assert sorted(out["row"].tolist()) == [0, 1, 2, 3]


# ---- exploration -------------------------------------------------------------------------


def test_exploration_slot_draws_from_below_the_list_with_its_propensity() -> None:
    state, order = explore(seed=3)
    slot = ExplorationReranker.positions(10, 1)[0]
    assert slot == 5 and order[:5] == [0, 1, 2, 3, 4] and order[6:] == [6, 7, 8, 9]
    assert 10 <= order[slot] < 30  # from the next ``pool`` items
    assert state.explored[order].tolist() == [i == slot for i in range(10)]
    assert state.propensity[order[slot]] == pytest.approx(1 / 20)
    assert state.explore_pool.tolist() == list(range(10, 30))  # the support, for off-policy
    assert explore(seed=3)[1] == order  # reproducible per request seed
    picks = Counter(explore(seed=s)[1][slot] for s in range(2000))
    assert set(picks) == set(range(10, 30))  # uniform over the pool
    assert max(picks.values()) / 2000 < 2.0 / 20


def test_exploration_rate_and_slots() -> None:
    state, order = explore(seed=1, rate=0.0)
    assert order == list(range(10)) and not state.explored.any()
    assert state.propensity[order[5]] == pytest.approx(1.0)  # the exploit choice is certain
    state, order = explore(seed=1, slots=3)
    assert state.explored[order].sum() == 3 and 0 not in ExplorationReranker.positions(10, 3)
    explored = Counter(bool(explore(seed=s, rate=0.25)[0].explored.any()) for s in range(800))
    assert 0.18 < explored[True] / 800 < 0.32


async def test_exploration_is_reproducible_per_request_seed() -> None:
    frame = make_frame([("Drama",), ("Comedy",), ("Action",)] * 20)
    knobs = {"exploration": {"slots": 2, "rate": 1.0}}
    first = await served(frame, 10, knobs, seed=11)
    assert (await served(frame, 10, knobs, seed=11))["row"].tolist() == first["row"].tolist()
    others = {tuple((await served(frame, 10, knobs, seed=s))["row"].tolist()) for s in range(8)}
    assert len(others) > 1  # the seed, not the frame, decides the draws
    assert first["explored"].sum() == 2


# ---- the stage ---------------------------------------------------------------------------


async def test_stage_order_and_explanations() -> None:
    stage = build_reranking(None)
    names = [r.name for r in stage.components]
    assert (
        names == [cls.name for cls in RERANKERS] == ["fatigue", "freshness", "mmr", "exploration"]
    )
    assert set(stage.needs()) == {"score", "impressions", "added_ts", "genre_mask"}
    genres = [("Drama",), ("Comedy",), ("Action",)] * 10
    frame = make_frame(genres, added_ts=np.full(30, NOW), impressions=np.ones(30))
    result = await stage.run(context(k=8, knobs={"exploration": {"slots": 1}}), frame)
    out = result.frame
    assert result.info.applied == names and len(out) == 8
    assert {"adjust_fatigue", "adjust_freshness", "adjust_mmr_redundancy"} <= set(out)
    assert out["explored"].sum() == 1 and len(set(out["row"].tolist())) == 8
    assert out.ids == [frame.ids[r] for r in out["row"].tolist()]
    assert np.all(out["propensity"] > 0) and np.all(out["propensity"] <= 1)
    # the pool the slot drew from: below the list, and holding the explored item
    pool = result.info.explore_pool
    explored_row = int(out["row"][out["explored"]][0])
    assert explored_row in pool and not set(pool) & (set(out["row"].tolist()) - {explored_row})
    np.testing.assert_allclose(out["adjust_fatigue"], -0.1, atol=1e-6)  # one impression each


async def test_kill_switch_skips_a_reranker() -> None:
    stage = build_reranking(None, disabled=frozenset({"mmr"}))
    assert [r.name for r in stage.components] == ["fatigue", "freshness", "exploration"]
    genres = [("Drama",)] * 12 + [("Comedy",)] * 2
    out = (await stage.run(context(k=6, knobs=NO_EXPLORATION), make_frame(genres))).frame
    assert out["row"].tolist() == list(range(6))  # top k by score: no genre cap without MMR
    assert "adjust_mmr_redundancy" not in out


async def test_fewer_items_than_k_and_an_empty_list() -> None:
    out = await served(make_frame([("Drama",), ("Comedy",)]), 10)
    assert sorted(out["row"].tolist()) == [0, 1]
    empty = await served(make_frame([]), 10)
    assert len(empty) == 0 and empty["row"].dtype == np.int64


async def test_out_of_bounds_lambda_is_refused() -> None:
    with pytest.raises(KnobError) as exc:
        await served(make_frame(DIVERSE), 5, {"mmr": {"lambda": 1.5}})
    assert exc.value.loc == ("variant", "knobs", "mmr") and "lambda" in exc.value.msg


@pytest.mark.parametrize("ctype", [MSGPACK, JSON])
async def test_served_list_on_the_wire(ctype: str) -> None:
    stage = build_reranking(None)
    codec = StageCodec(stage)
    frame = make_frame(DIVERSE, added_ts=np.full(len(DIVERSE), NOW - 3600.0))
    ctx, sent = codec.decode_request(codec.encode_request(context(k=8), frame), binary=True)
    local = await stage.run(ctx, sent)
    remote = codec.decode_reply(codec.encode_reply(local, ctype == MSGPACK), ctype, frame.ids)
    assert remote.frame.ids == local.frame.ids and remote.info == local.info
    assert set(remote.frame) == set(local.frame)
    for name in local.frame:
        np.testing.assert_array_equal(remote.frame[name], local.frame[name], err_msg=name)
