"""Re-ranking in-process: MMR's diversity effect (intra-list similarity drops), the genre cap,
freshness boost, exploration slots with their propensities, fatigue, and the chain."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from services.reranking.chain import RerankChain
from services.reranking.pipeline import RERANKERS, build_rerank_chain
from services.reranking.rerankers import (
    ExplorationReranker,
    FatigueReranker,
    FreshnessReranker,
    MMRReranker,
)
from services.reranking.rerankers.mmr_reranker import similarity
from shared.pipeline.items import genre_mask, mask_to_multi_hot
from shared.pipeline.rerank_state import RerankInput, RerankState
from shared.pipeline.tunables import Tunables

NOW = 1_700_000_000.0


def make_input(
    genres: list[tuple[str, ...]],
    score: list[float] | None = None,
    k: int = 5,
    tunables: Tunables | None = None,
    **cols: object,
) -> RerankInput:
    n = len(genres)
    return RerankInput(
        item_ids=[f"i{j}" for j in range(n)],
        score=np.asarray(score if score is not None else np.linspace(1, 0.5, n), np.float32),
        genre_mask=np.array([genre_mask(g) for g in genres], dtype=np.int64),
        added_ts=np.asarray(cols.get("added_ts", np.zeros(n)), np.float64),
        impressions=np.asarray(cols.get("impressions", np.zeros(n)), np.int64),
        k=k,
        now=NOW,
        seed=int(cols.get("seed", 1)),  # type: ignore[call-overload]
        tunables=tunables or Tunables(exploration_slots=0),
    )


def clustered_embeddings(n_similar: int, n: int, dim: int = 8) -> np.ndarray:
    """The first ``n_similar`` items almost identical, the rest spread out."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, dim))
    emb[:n_similar] = emb[0] + 0.01 * rng.normal(size=(n_similar, dim))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def intra_list_similarity(inp: RerankInput, rows: np.ndarray, emb: np.ndarray) -> float:
    """Mean pairwise similarity of the served items (the measure MMR is meant to lower)."""
    sim = similarity(mask_to_multi_hot(inp.genre_mask[rows]), emb[rows], 0.5)
    k = len(rows)
    return float((sim.sum() - np.trace(sim)) / (k * (k - 1)))


def test_mmr_lowers_intra_list_similarity() -> None:
    n = 30
    genres = [("Drama",)] * 10 + [
        (g,) for g in ("Comedy", "Action", "Horror", "Sci-Fi", "Western")
    ] * 4
    emb = clustered_embeddings(10, n)
    t = Tunables(exploration_slots=0, mmr_lambda=0.5, genre_cap=10)
    inp = make_input(genres, k=6, tunables=t)
    chain = RerankChain([MMRReranker()], lambda ids: emb[[int(i[1:]) for i in ids]])
    out = chain.rerank(inp)
    top_k = np.arange(6)  # by score: the six similar Dramas
    assert out.rows[0] == 0  # the best item still leads
    assert intra_list_similarity(inp, out.rows, emb) < 0.5 * intra_list_similarity(inp, top_k, emb)
    assert len(set(out.rows.tolist())) == 6
    assert np.all(out.adjustments["mmr_redundancy"] <= 0)  # explained per item
    pure = RerankChain([MMRReranker()], lambda ids: emb[[int(i[1:]) for i in ids]]).rerank(
        make_input(
            genres, k=6, tunables=Tunables(exploration_slots=0, mmr_lambda=1.0, genre_cap=10)
        )
    )
    assert pure.rows.tolist() == top_k.tolist()  # lambda 1: relevance only


def test_genre_cap_yields_only_when_nothing_else_is_left() -> None:
    genres = [("Drama",)] * 12 + [("Comedy",)] * 2
    t = Tunables(exploration_slots=0, genre_cap=3, mmr_lambda=1.0)
    out = build_rerank_chain(None).rerank(make_input(genres, k=6, tunables=t))
    served = Counter(genres[r][0] for r in out.rows)
    assert served == {"Drama": 4, "Comedy": 2}  # 3 Dramas, both Comedies, then the cap yields
    out = build_rerank_chain(None).rerank(make_input(genres, k=5, tunables=t))
    assert Counter(genres[r][0] for r in out.rows) == {"Drama": 3, "Comedy": 2}


def test_freshness_boost_halves_every_half_life() -> None:
    t = Tunables(freshness_boost=0.2, freshness_half_life_h=24.0)
    inp = make_input(
        [("Drama",)] * 3, score=[0.5, 0.5, 0.5], added_ts=[NOW, NOW - 24 * 3600, 0.0], tunables=t
    )
    state = RerankChain([FreshnessReranker()], None).state(inp)
    FreshnessReranker().rerank(state)
    np.testing.assert_allclose(state.adjustments["freshness"], [0.2, 0.1, 0.0], atol=1e-6)
    out = build_rerank_chain(None).rerank(
        make_input(
            [("Drama",), ("Comedy",)],
            score=[0.55, 0.5],
            k=2,
            added_ts=[NOW - 365 * 86_400, NOW],
            tunables=Tunables(exploration_slots=0),
        )
    )
    assert out.rows.tolist() == [1, 0]  # the brand-new item overtakes a slightly better old one


def test_fatigue_drops_over_shown_items_and_penalises_the_rest() -> None:
    t = Tunables(fatigue_max_impressions=3, fatigue_penalty=0.1, exploration_slots=0)
    inp = make_input(
        [("Drama",)] * 4, score=[0.9, 0.8, 0.7, 0.6], k=4, impressions=[3, 1, 0, 5], tunables=t
    )
    state = RerankChain([], None).state(inp)
    FatigueReranker().rerank(state)
    assert state.active.tolist() == [False, True, True, False]
    np.testing.assert_allclose(state.score, [0.6, 0.7, 0.7, 0.1], atol=1e-6)
    out = build_rerank_chain(None).rerank(inp)
    assert sorted(out.rows.tolist()) == [1, 2]  # never shown again within the limit


def _exploration(seed: int, rate: float = 1.0, slots: int = 1) -> tuple[RerankState, list[int]]:
    t = Tunables(exploration_slots=slots, exploration_rate=rate, exploration_pool=20)
    state = RerankChain([], None).state(make_input([("Drama",)] * 40, k=10, tunables=t, seed=seed))
    state.order = np.arange(10)
    ExplorationReranker().rerank(state)
    assert state.order is not None
    return state, state.order.tolist()


def test_exploration_slot_draws_from_below_the_list_with_its_propensity() -> None:
    state, order = _exploration(seed=3)
    slot = ExplorationReranker.positions(10, 1)[0]
    assert slot == 5 and order[:5] == [0, 1, 2, 3, 4] and order[6:] == [6, 7, 8, 9]
    assert 10 <= order[slot] < 30  # from the next exploration_pool items
    assert state.explored[order].tolist() == [i == slot for i in range(10)]
    assert state.propensity[order[slot]] == pytest.approx(1 / 20)
    assert _exploration(seed=3)[1] == order  # reproducible per request seed
    picks = Counter(_exploration(seed=s)[1][slot] for s in range(2000))
    assert set(picks) == set(range(10, 30))  # uniform over the pool
    assert max(picks.values()) / 2000 < 2.0 / 20


def test_exploration_rate_and_slots() -> None:
    state, order = _exploration(seed=1, rate=0.0)
    assert order == list(range(10)) and not state.explored.any()
    assert state.propensity[order[5]] == pytest.approx(1.0)  # the exploit choice is certain
    state, order = _exploration(seed=1, slots=3)
    assert state.explored[order].sum() == 3 and 0 not in ExplorationReranker.positions(10, 3)
    explored = Counter(bool(_exploration(seed=s, rate=0.25)[0].explored.any()) for s in range(800))
    assert 0.18 < explored[True] / 800 < 0.32


def test_chain_order_and_explanations() -> None:
    chain = build_rerank_chain(None)
    assert chain.names == [cls().name for cls in RERANKERS]
    assert chain.names == ["fatigue", "freshness", "mmr", "exploration"]
    genres = [("Drama",), ("Comedy",), ("Action",)] * 10
    out = chain.rerank(
        make_input(
            genres,
            k=8,
            tunables=Tunables(exploration_slots=1),
            added_ts=np.full(30, NOW),
            impressions=np.ones(30),
        )
    )
    assert out.applied == chain.names and len(out.rows) == 8
    assert {"fatigue", "freshness", "mmr_redundancy"} <= set(out.adjustments)
    assert out.explored.sum() == 1 and len(set(out.rows.tolist())) == 8
    assert np.all(out.propensity > 0) and np.all(out.propensity <= 1)
