"""The ranker learns only from pairs its retrieval model did not fit, with serving's features."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from shared.datasets.movielens import MovieLens
from shared.features.config import FeatureConfig
from shared.features.encoders import item_id_hash
from training import protocol
from training.config import PipelineConfig, tiny_config
from training.data.splits import (
    RankerHoldout,
    Split,
    ranker_holdout,
    recbole_split,
    temporal_split,
)
from training.evaluation.evaluate import Queries
from training.features.builder import FeatureBuilder
from training.models.ranker import RANKER_INPUTS, MMoERanker
from training.models.two_tower import TwoTower, pooled_history
from training.ranking import (
    RankerExamples,
    _init_bias,
    example_rows,
    query_balance,
    train_ranker,
)
from training.retrieval import EmaWeights, item_embeddings, user_embeddings

FRAC = 0.125


def _pairs(df: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(df["user_id"], df["item_id"], strict=True))


def _split(data: MovieLens, name: str) -> Split:
    return (
        temporal_split(data.interactions)
        if name == "temporal"
        else recbole_split(data.interactions, seed=3)
    )


def test_temporal_holdout_is_the_end_of_the_training_period(tiny_data: MovieLens) -> None:
    s = temporal_split(tiny_data.interactions)
    h = ranker_holdout(s, FRAC, seed=0, n_query_times=3)
    assert len(h.fit) + len(h.hold) == len(s.train)
    assert not (_pairs(h.fit) & _pairs(h.hold)) and _pairs(h.fit) | _pairs(h.hold) == _pairs(
        s.train
    )
    assert h.fit["timestamp"].max() < h.hold["timestamp"].min() == h.query_times[0]
    assert 0.08 < len(h.hold) / len(s.train) < 0.2
    assert len(h.query_times) == 3 and h.query_times == sorted(h.query_times)
    for (known, target, now), t in zip(h.query_sets(), h.query_times, strict=True):
        # Known: every training event before the query; targets: the hold-out events after it.
        assert now == t and known["timestamp"].max() < t <= target["timestamp"].min()
        assert len(known) + len(target) == len(s.train)
        assert _pairs(target) <= _pairs(h.hold)


def test_recbole_holdout_is_per_user_and_seeded(tiny_data: MovieLens) -> None:
    s = recbole_split(tiny_data.interactions, seed=3)
    h = ranker_holdout(s, FRAC, seed=3, n_query_times=3)
    assert h.query_times == [] and len(h.query_sets()) == 1 and h.query_sets()[0][2] is None
    assert not (_pairs(h.fit) & _pairs(h.hold)) and _pairs(h.fit) | _pairs(h.hold) == _pairs(
        s.train
    )
    for user, g in s.train.groupby("user_id"):
        assert int((h.hold["user_id"] == user).sum()) == int(len(g) * FRAC)
    assert ranker_holdout(s, FRAC, seed=3).hold.equals(h.hold)
    assert not ranker_holdout(s, FRAC, seed=4).hold.equals(h.hold)


@dataclass
class Stack:
    """What ``protocol.train_stack`` trained, and what it handed to each step."""

    split: Split
    cfg: PipelineConfig
    fits: list[pd.DataFrame]  # frames each two-tower was trained on, in order
    towers: list[TwoTower]  # the two-towers, in order
    calls: list[tuple[TwoTower, FeatureBuilder, RankerExamples]]  # each build_examples call
    examples: RankerExamples  # what the ranker was trained on (all calls' examples)
    example_model: TwoTower  # the two-tower that produced the examples
    served: TwoTower
    ranker: MMoERanker
    summary: dict[str, Any]

    def served_cfg(self) -> FeatureConfig:
        """The feature config every builder of the run shares."""
        return self.calls[0][1].cfg


@pytest.fixture(scope="module", params=["temporal", "recbole"])
def stack(request: pytest.FixtureRequest, tiny_data: MovieLens) -> Iterator[Stack]:
    """Run the real train_stack on the fixture, recording its inner calls."""
    split = _split(tiny_data, request.param)
    cfg = tiny_config(5)
    cfg = replace(
        cfg,
        retrieval=replace(cfg.retrieval, epochs=1, user_time="event" if split.temporal else "last"),
    )
    fits: list[pd.DataFrame] = []
    towers: list[TwoTower] = []
    calls: list[tuple[TwoTower, FeatureBuilder, RankerExamples]] = []
    trained: dict[str, RankerExamples] = {}
    real_tt, real_ex, real_rk = (
        protocol.train_two_tower,
        protocol.build_examples,
        protocol.train_ranker,
    )

    def spy_tt(fb: FeatureBuilder, train: pd.DataFrame, *a: Any, **k: Any) -> TwoTower:
        fits.append(train.copy())
        towers.append(real_tt(fb, train, *a, **k))
        return towers[-1]

    def spy_ex(model: TwoTower, fb: FeatureBuilder, *a: Any, **k: Any) -> RankerExamples:
        calls.append((model, fb, real_ex(model, fb, *a, **k)))
        return calls[-1][2]

    def spy_rk(ex: RankerExamples, *a: Any, **k: Any) -> Any:
        trained["ex"] = ex
        return real_rk(ex, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(protocol, "train_two_tower", spy_tt)
    mp.setattr(protocol, "build_examples", spy_ex)
    mp.setattr(protocol, "train_ranker", spy_rk)
    try:
        fb = FeatureBuilder(tiny_data, split.train)
        val_q = protocol._queries(
            split, split.val, split.train, split.train, fb, split.val_time, None, cfg.seed
        )
        served, ranker, summary = protocol.train_stack(tiny_data, split, fb, val_q, cfg)
    finally:
        mp.undo()
    yield Stack(
        split, cfg, fits, towers, calls, trained["ex"], calls[0][0], served, ranker, summary
    )


def _rows(fb: FeatureBuilder, ex: RankerExamples) -> tuple[list[str], list[str]]:
    """User and item ids of every example row."""
    return [fb.user_ids[u] for u in ex.uidx[ex.query]], [fb.item_ids[i] for i in ex.items]


def _holdout(st: Stack) -> RankerHoldout:
    return ranker_holdout(
        st.split, st.cfg.ranker.holdout_frac, st.cfg.seed, st.cfg.ranker.query_times
    )


def test_examples_come_from_pairs_the_retrieval_model_never_fit(stack: Stack) -> None:
    hold = _holdout(stack)
    # First two-tower: the fit part only; it made every example. Second: the whole training set.
    assert stack.fits[0].equals(hold.fit) and stack.fits[1].equals(stack.split.train)
    assert stack.served is stack.towers[1]
    assert all(model is stack.towers[0] for model, _, _ in stack.calls)
    assert len(stack.calls) == len(hold.query_sets()) == (3 if stack.split.temporal else 1)
    assert len(stack.examples) == sum(len(ex) for _, _, ex in stack.calls)
    rating = {
        (u, i): r for u, i, r in hold.hold[["user_id", "item_id", "rating"]].itertuples(False)
    }
    for (_, fb, ex), (known, target, _) in zip(stack.calls, hold.query_sets(), strict=True):
        users, items = _rows(fb, ex)
        rows = list(zip(users, items, strict=True))
        assert len(set(rows)) == len(rows)  # no (user, item) twice for one query
        assert not set(rows) & _pairs(hold.fit)  # nothing retrieval was fit on, either label
        assert not set(rows) & _pairs(known)  # nor anything the user had already seen
        labels = np.array([row in _pairs(target) for row in rows])
        np.testing.assert_array_equal(ex.y_interact, labels)
        likes = np.array([labels[j] and rating[row] >= 4 for j, row in enumerate(rows)])
        np.testing.assert_array_equal(ex.y_like, likes)
        assert ex.y_interact.sum() > 0 and (ex.y_interact == 0).sum() > ex.y_interact.sum()


def test_no_example_is_one_of_the_users_own_validation_or_test_items(stack: Stack) -> None:
    """Validation and test items are positives the protocol hides: never label-0 rows (under
    RecBole's shuffle the old rule made about two thirds of the retrieved positives negative)."""
    held_out = _pairs(stack.split.val) | _pairs(stack.split.test)
    for _, fb, ex in stack.calls:
        users, items = _rows(fb, ex)
        assert not set(zip(users, items, strict=True)) & held_out


def test_example_rows_leave_out_banned_items_but_never_a_positive() -> None:
    # One query, 6 items: seen {0}, relevant {2}, banned {2, 3} (2 is relevant, so it stays).
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0]], dtype=np.float32))
    q = Queries(np.array([0]), np.array([0.0]), seen, [{2}], [set()])
    banned = sp.csr_matrix(np.array([[0, 0, 1, 1, 0, 0]], dtype=np.float32))
    cands = np.array([[3, 2, 1]])
    rng = np.random.default_rng(0)
    _, old = example_rows(cands, q, 6, n_random=5, rng=rng)
    _, new = example_rows(cands, q, 6, n_random=5, rng=rng, not_negative=banned)
    assert 3 in old  # the old rule: a banned item as a (hard) negative
    assert sorted(new.tolist()) == [1, 2, 4, 5] and new[:2].tolist() == [2, 1]


def test_example_features_never_show_the_label(stack: Stack) -> None:
    """Each query's inputs hold no item it is labelled on, and come from before its time."""
    hold = _holdout(stack)
    for (_, fb, ex), (known, target, now) in zip(stack.calls, hold.query_sets(), strict=True):
        for q, u in enumerate(ex.uidx):
            labels = target.loc[target["user_id"] == fb.user_ids[u], "item_id"].tolist()
            hist = {tuple(h) for h in ex.user["hist_item_hash"][q].tolist() if h[0] > 0}
            assert not hist & {tuple(h) for h in item_id_hash(labels).tolist()}
            if now is not None:
                assert ex.now[q] == now
        # Item counters are point-in-time too: the builder only knows ``known``.
        assert len(fb.i_key) == len(known)


def test_training_similarity_is_what_the_ranker_computes(stack: Stack) -> None:
    """``ex.sim`` (training) equals the similarity the ranker graph computes from its inputs with
    the two-tower that made the examples; after training it carries the served two-tower."""
    _, fb, ex = stack.calls[-1]
    rows = np.arange(0, len(ex), max(1, len(ex) // 300))
    feeds = {k: v[ex.query[rows]] for k, v in ex.user.items()}
    feeds.update({k: v[rows] for k, v in ex.item.items()})
    t = {k: torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in RANKER_INPUTS[:9]}
    probe = MMoERanker(fb.cfg, stack.example_model)
    np.testing.assert_allclose(probe.similarity(t).numpy(), ex.sim[rows], atol=1e-5)
    served = stack.ranker.similarity(t).numpy()
    u = user_embeddings(stack.served, feeds)
    v = item_embeddings(stack.served, fb)[ex.items[rows]]
    np.testing.assert_allclose(served, (u * v).sum(axis=1), atol=1e-5)


def test_untrained_ranker_orders_like_retrieval(stack: Stack) -> None:
    ex = stack.examples
    model = MMoERanker(stack.served_cfg(), stack.example_model).eval()
    _init_bias(model, ex, stack.cfg.retrieval.temperature)
    q = ex.query == 0
    feeds = {k: v[:1] for k, v in ex.user.items()} | {k: v[q] for k, v in ex.item.items()}
    with torch.no_grad():
        p_int, _, score = model(**{k: torch.from_numpy(feeds[k]) for k in RANKER_INPUTS})
    order = np.argsort(-score.numpy(), kind="stable")
    np.testing.assert_array_equal(order, np.argsort(-ex.sim[q], kind="stable"))
    # Heads start at the examples' base rate.
    assert abs(float(p_int.mean()) - float(ex.y_interact.mean())) < 0.2


def test_every_query_weighs_the_same(stack: Stack) -> None:
    ex = stack.examples
    w = query_balance(ex) * ex.y_interact
    per_query = np.bincount(ex.query, weights=w, minlength=len(ex.now))
    has_pos = np.bincount(ex.query, weights=ex.y_interact, minlength=len(ex.now)) > 0
    np.testing.assert_allclose(per_query[has_pos], per_query[has_pos][0], rtol=1e-5)
    assert (query_balance(ex)[ex.y_interact == 0] == 1).all()


@pytest.mark.parametrize("trend", [-1.0, 1.0])
def test_ranker_keeps_the_best_validated_checkpoint(stack: Stack, trend: float) -> None:
    """Validation falling from the start keeps the untrained ranker; rising keeps the last."""
    scores = iter(0.5 + trend * 0.01 * np.arange(100))
    cfg = replace(stack.cfg.ranker, epochs=1, evals_per_epoch=2)
    model, summary = train_ranker(
        stack.examples,
        stack.example_model,
        stack.cfg.retrieval.temperature,
        cfg,
        0,
        validate=lambda _: float(next(scores)),
    )
    torch.manual_seed(1)  # train_ranker seeds with seed + 1 before building its model
    fresh = MMoERanker(stack.served_cfg(), stack.example_model)
    _init_bias(fresh, stack.examples, stack.cfg.retrieval.temperature)
    same = all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True)
    )
    if trend < 0:
        assert same and summary["kept_epoch"] == "0 (retrieval order)"
    else:
        assert not same and summary["kept_epoch"] == "1.00"
    assert summary["rows"] == len(stack.examples)


def test_fast_history_pooling_equals_the_exported_form() -> None:
    torch.manual_seed(0)
    emb = torch.nn.Embedding(500, 8, padding_idx=0)
    hist = torch.randint(1, 500, (6, 50, 2))
    hist[:, 20:] = 0
    hist[1] = 0  # no history at all
    hist[2, 3] = 0  # a masked target in the middle
    outs, grads = [], []
    for fast in (False, True):
        emb.zero_grad()
        out = pooled_history(emb, hist, fast=fast)
        (out * torch.arange(8.0)).sum().backward()
        outs.append(out.detach())
        assert emb.weight.grad is not None
        grads.append(emb.weight.grad.clone())
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])
    assert torch.equal(outs[0][1], torch.zeros(8))


def test_ema_weights_average_and_swap_back() -> None:
    model = torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in model.parameters()]
    ema = EmaWeights(model, decay=0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for s, p0 in zip(ema.shadow, start, strict=True):
        torch.testing.assert_close(s, p0 + 0.1)
    ema.swap(model)
    torch.testing.assert_close(next(model.parameters()), start[0] + 0.1)
    ema.swap(model)
    torch.testing.assert_close(next(model.parameters()), start[0] + 1.0)
