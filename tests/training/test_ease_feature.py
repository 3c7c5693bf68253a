"""The ranker's EASE feature: training-side scores (the whole known history, scipy) equal what
candidate generation serves (the gateway's full history, the bundle's weights file), the
merged candidates are those the sources and the seen filter make, and an untrained ranker
orders candidates by the retrieval blend it starts from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from services.candidate_generation.ease_score import EaseScore
from services.candidate_generation.sources.base import SourceCall
from services.gateway.request_state import full_history
from shared.datasets.movielens import MovieLens
from shared.features import UserFeatures
from shared.frame import Frame
from shared.models.item_item import SparseItemItem
from shared.online_store.types import UserState
from training.baselines import interaction_matrix
from training.evaluation.evaluate import ease_matrix, merged_candidates
from training.features.builder import FeatureBuilder
from training.models.ranker import MMoERanker
from training.models.two_tower import TwoTower
from training.protocol import sparse_ease
from training.ranking import score_candidates
from training.retrieval import item_embeddings, user_embeddings


@dataclass
class _Index:
    """The item index's id ↔ row mapping (what EaseScore reads of it)."""

    item_ids: list[str]

    def rows(self, ids: list[str]) -> np.ndarray:
        at = {i: r for r, i in enumerate(self.item_ids)}
        return np.array([at.get(i, -1) for i in ids], dtype=np.int64)


@dataclass
class _Bundle:
    item_item: SparseItemItem | None
    index: _Index


def _known(data: MovieLens) -> tuple[sp.csr_matrix, list[str], list[str]]:
    ev = data.interactions
    users, items = data.users["user_id"].tolist(), data.items["item_id"].tolist()
    u = ev["user_id"].map({x: i for i, x in enumerate(users)}).to_numpy()
    i = ev["item_id"].map({x: k for k, x in enumerate(items)}).to_numpy()
    return interaction_matrix(u, i, len(users), len(items)), users, items


def test_served_ease_score_equals_the_training_feature(
    tiny_data: MovieLens, tmp_path: Path
) -> None:
    known, users, items = _known(tiny_data)
    weights = sparse_ease(known, 50.0, 20)
    m = weights.tocsr()
    SparseItemItem(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data).save(tmp_path)
    served = SparseItemItem.load(tmp_path)  # the file candidate generation loads
    bundle = _Bundle(served, _Index(items))
    rng = np.random.default_rng(0)
    ev = tiny_data.interactions.sort_values("timestamp", kind="stable")
    for r in rng.choice(len(users), 6, replace=False):
        mine = ev[ev["user_id"] == users[r]]["item_id"].tolist()
        # the store: the latest 10 as history (a short history_cap), every item in the seen window
        state = UserState(UserFeatures(users[r], history=tuple(mine[-10:])), True, frozenset(mine))
        cands = [items[c] for c in rng.choice(len(items), 40, replace=False)] + ["new-item"]
        user = UserFeatures(users[r], history=tuple(full_history(state)))
        frame = EaseScore().annotate(Frame(cands), _call(user, bundle))
        expected = ease_matrix(known[[r]], weights)[0, _Index(items).rows(cands[:-1])]
        np.testing.assert_allclose(frame["ease_score"][:-1], expected, atol=1e-5)
        assert frame["ease_score"][-1] == 0.0  # an item the weights do not know
        assert (expected != 0).any()
    empty = EaseScore().annotate(Frame(cands), _call(UserFeatures("x"), bundle))
    assert np.all(empty["ease_score"] == 0)


def _call(user: UserFeatures, bundle: object) -> SourceCall:
    """What candidate generation hands the annotation: the user and the bundle (no context or
    store: the EASE score needs neither)."""
    return SourceCall(None, user, bundle, None)  # type: ignore[arg-type]


def test_full_history_puts_the_recent_history_last() -> None:
    state = UserState(UserFeatures("u", history=("7", "3")), True, frozenset({"1", "3", "7", "9"}))
    assert full_history(state) == ["1", "9", "7", "3"]


def test_merged_candidates_as_the_sources_and_the_seen_filter_make_them() -> None:
    tt = np.array([[0.9, 0.8, 0.7, 0.1, 0.0, 0.2]])
    ease = np.array([[0.0, 0.5, 0.0, 0.4, -0.2, 0.3]])
    history = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0]], dtype=np.float32))
    seen = sp.csr_matrix(
        np.array([[1, 0, 1, 0, 0, 0]], dtype=np.float32)
    )  # 2: seen, not in history
    cands, retrieved, valid = merged_candidates(tt, ease, history, seen, 2, 3)
    # two-tower: 1, 2 (0 is history); EASE: 1 (dup), 3, 5 (positive, outside history)
    assert cands[retrieved].tolist() == [1, 2, 3, 5]
    assert cands[valid].tolist() == [1, 3, 5]  # the seen filter removes 2
    assert set(cands[0].tolist()) <= {1, 2, 3, 5}  # invalid slots hold real items


def test_untrained_ranker_orders_by_the_blend(tiny_data: MovieLens) -> None:
    torch.manual_seed(0)
    fb = FeatureBuilder(tiny_data, tiny_data.interactions)
    tt = TwoTower(fb.cfg, dim=16).eval()
    ranker = MMoERanker(fb.cfg, tt).eval()
    with torch.no_grad():
        ranker.ease_scale.fill_(4.0)
    uidx, now = np.arange(3), np.full(3, 8.9e8)
    users = fb.user_inputs(uidx, now)
    cands = np.tile(np.arange(30), (3, 1))
    ease = np.random.default_rng(1).normal(0, 0.3, cands.shape).astype(np.float32)
    score = score_candidates(ranker, fb, users, cands, now, ease)[0]
    sim = user_embeddings(tt, users) @ item_embeddings(tt, fb)[:30].T
    blend = sim / ranker.temperature + 4.0 * ease
    for r in range(3):
        assert np.argsort(-score[r]).tolist() == np.argsort(-blend[r]).tolist()
