"""Splits: the temporal split leaks nothing; RecBole's protocol follows its counting rule."""

from __future__ import annotations

import pandas as pd

from shared.datasets.movielens import MovieLens
from training.data.splits import _recbole_counts, recbole_split, temporal_split


def _key(df: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(df["user_id"], df["item_id"], strict=True))


def test_temporal_split_has_no_leakage(tiny_data: MovieLens) -> None:
    s = temporal_split(tiny_data.interactions)
    assert len(s.train) + len(s.val) + len(s.test) == len(tiny_data.interactions)
    assert not (_key(s.train) & _key(s.val)) and not (_key(s.val) & _key(s.test))
    # Every train event is earlier than every val event, which is earlier than every test event.
    assert s.train["timestamp"].max() < s.val["timestamp"].min() == s.val_time
    assert s.val["timestamp"].max() < s.test["timestamp"].min() == s.test_time
    assert 0.75 < len(s.train) / len(tiny_data.interactions) < 0.85


def test_recbole_split_counts_and_determinism(tiny_data: MovieLens) -> None:
    a = recbole_split(tiny_data.interactions, seed=3)
    b = recbole_split(tiny_data.interactions, seed=3)
    assert a.train.equals(b.train) and a.test.equals(b.test)
    assert len(a.train) + len(a.val) + len(a.test) == len(tiny_data.interactions)
    for user, g in tiny_data.interactions.groupby("user_id"):
        n = len(g)
        got = [int((part["user_id"] == user).sum()) for part in (a.train, a.val, a.test)]
        assert got == _recbole_counts(n, (0.8, 0.1, 0.1))


def test_recbole_counting_rule_by_hand() -> None:
    assert _recbole_counts(20, (0.8, 0.1, 0.1)) == [16, 2, 2]
    assert _recbole_counts(25, (0.8, 0.1, 0.1)) == [21, 2, 2]
    assert _recbole_counts(5, (0.8, 0.1, 0.1)) == [3, 1, 1]  # fractional parts get one each
    assert _recbole_counts(2, (0.8, 0.1, 0.1)) == [1, 0, 1]


def test_synthetic_catalog_has_structure() -> None:
    import numpy as np

    from training.data.synthetic import (
        generate_catalog,
        item_embeddings,
        sample_interactions,
        user_embeddings,
    )

    cat = generate_catalog(20_000, 500, seed=1)
    emb = item_embeddings(cat, 32)
    assert emb.shape == (20_000, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    ev = sample_interactions(cat, 5000, seed=2)
    assert len(ev["user"]) == 5000 and np.all(np.diff(ev["timestamp"]) >= 0)
    counts = np.bincount(ev["item"], minlength=20_000)
    assert np.sort(counts)[-200:].sum() > 0.2 * counts.sum()  # Zipf head
    # Interacted items score higher for their users than random items (learnable signal).
    u = user_embeddings(cat, 32)
    pos = np.einsum("nd,nd->n", u[ev["user"]], emb[ev["item"]]).mean()
    rnd = np.einsum(
        "nd,nd->n", u[ev["user"]], emb[np.random.default_rng(0).integers(0, 20_000, 5000)]
    ).mean()
    assert pos > rnd + 0.05
