"""Shared helpers for the training tests: the committed tiny MovieLens fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.datasets.movielens import MovieLens, load_movielens

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ml100k_tiny"


@pytest.fixture(scope="session")
def tiny_data() -> MovieLens:
    """40 users × ≤60 ratings of the real ML-100K, RecBole atomic format."""
    return load_movielens(FIXTURE / "recbole")
