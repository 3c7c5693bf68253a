"""Ranking in-process: the multi-task ONNX ranker's heads and the configurable blend, and the
columnar item path producing exactly the encoders' model inputs."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from services.ranking.ranker import MultiTaskRanker, UnknownHeadError
from shared.features import DEFAULT_CONFIG, GENRES, ItemTable, UserFeatures, encode_ranker
from shared.pipeline.items import ItemColumns
from tests.integration.serving_fixtures import (
    HEADS,
    MemoryStore,
    catalog,
    load_models,
    write_synthetic_bundle,
)

NOW = 1_700_000_000.0
ITEMS = catalog(120)
USER = UserFeatures(
    "u",
    age=30,
    gender="F",
    history=("1", "2"),
    genre_affinity=[1.0 if g == "Drama" else 0.1 for g in GENRES],
)


@pytest.fixture(scope="module")
def ranker(tmp_path_factory: pytest.TempPathFactory) -> MultiTaskRanker:
    holder = load_models(write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS), ("ranker",))
    return MultiTaskRanker(holder.require)


@pytest.fixture(scope="module")
def columns() -> ItemColumns:
    ids = [r.item_id for r in ITEMS] + ["unknown"]
    return ItemColumns.from_batch(asyncio.run(MemoryStore(ITEMS).get_items(ids, NOW)))


def test_heads_and_default_blend_from_the_model_meta(ranker: Any, columns: Any) -> None:
    assert ranker.heads() == list(HEADS)
    assert ranker.default_weights() == {"p_interact": 0.7, "p_like": 0.3}
    s = ranker.score(USER, columns, NOW)
    assert set(s.heads) == set(HEADS) and s.model_version == "synthetic-1"
    expected = 0.7 * s.heads["p_interact"] + 0.3 * s.heads["p_like"]
    np.testing.assert_allclose(s.score, expected, rtol=1e-6)
    assert np.all((s.heads["p_like"] > 0) & (s.heads["p_like"] < 1))


def test_blend_weights_change_the_order(ranker: Any, columns: Any) -> None:
    like_only = ranker.score(USER, columns, NOW, {"p_like": 1.0})
    np.testing.assert_allclose(like_only.score, like_only.heads["p_like"])
    interact_only = ranker.score(USER, columns, NOW, {"p_interact": 2.0})
    np.testing.assert_allclose(interact_only.score, 2.0 * interact_only.heads["p_interact"])
    assert (
        np.argsort(-like_only.score)[:10].tolist() != np.argsort(-interact_only.score)[:10].tolist()
    )


def test_unknown_head_is_refused(ranker: Any, columns: Any) -> None:
    with pytest.raises(UnknownHeadError, match="p_watch"):
        ranker.score(USER, columns, NOW, {"p_watch": 1.0})


def test_empty_batch(ranker: Any) -> None:
    s = ranker.score(USER, ItemColumns.unknown([]), NOW)
    assert s.score.shape == (0,) and set(s.heads) == set(HEADS)


async def test_columns_give_exactly_the_encoders_inputs(columns: Any) -> None:
    """The serving fast path (columns, cached id hashes, per-year encoding) must feed the
    ranker the same tensors as the shared encoders on per-item records."""
    batch = await MemoryStore(ITEMS).get_items(columns.item_ids, NOW)
    reference = encode_ranker(USER, ItemTable.from_items(list(batch.features)), NOW)
    fast = encode_ranker(USER, columns.to_table(DEFAULT_CONFIG), NOW)
    assert reference.keys() == fast.keys()
    for name in reference:
        np.testing.assert_array_equal(reference[name], fast[name], err_msg=name)
    shuffled = columns.take(np.random.default_rng(0).permutation(len(columns)))
    again = encode_ranker(USER, shuffled.to_table(DEFAULT_CONFIG), NOW)  # cache hits, new order
    ref2 = encode_ranker(
        USER,
        ItemTable.from_items(
            [batch.features[columns.item_ids.index(i)] for i in shuffled.item_ids]
        ),
        NOW,
    )
    for name in ref2:
        np.testing.assert_array_equal(ref2[name], again[name], err_msg=name)
