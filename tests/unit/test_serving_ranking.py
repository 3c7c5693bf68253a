"""Ranking in-process: the multi-task ONNX ranker's heads, the blend (the model's meta, else
its own score output, overridden by a variant's knobs), an unknown head refused, the frame's
item path producing exactly the encoders' model inputs, and the stage with its wire form."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.ranking.item_table import item_table
from services.ranking.scorer import MultiTaskRanker, RankerKnobs
from services.ranking.stage import RankingStage
from shared.features import GENRES, ItemTable, UserFeatures, encode_ranker
from shared.frame import Frame
from shared.models.bundle import ModelBundle
from shared.models.model_set import ModelSet
from shared.pipeline.context import VariantSpec
from shared.pipeline.stage import Refused, StageCodec, stage_route
from shared.platform.fast_routes import JSON, MSGPACK, FastRequest, RequestError
from tests.integration.serving_fixtures import (
    HEADS,
    MemoryStore,
    catalog,
    context,
    hydrated_frame,
    load_models,
    user_state,
    write_synthetic_bundle,
)

NOW = 1_700_000_000.0
ITEMS = catalog(120)
IDS = [r.item_id for r in ITEMS] + ["unknown"]  # one item the catalog does not know
AFFINITY = [1.0 if g == "Drama" else 0.1 for g in GENRES]
STATE = user_state("u", ("1", "2"), age=30, gender="F", genre_affinity=AFFINITY)
USER: UserFeatures = STATE.features
RANKER = MultiTaskRanker()
ITEM_TABLE_FIELDS = (
    "id_hash",
    "genres",
    "year",
    "release_year",
    "counts",
    "like_count",
    "rating_count",
)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS)


@pytest.fixture(scope="module")
def models(bundle_dir: Path) -> ModelSet:
    models: ModelSet = load_models(bundle_dir, ("ranker",), "ranker")
    return models


@pytest.fixture(scope="module")
def bundle(models: ModelSet) -> ModelBundle:
    return models.get()


@pytest.fixture(scope="module")
def frame() -> Frame:
    hydrated: Frame = hydrated_frame(MemoryStore(ITEMS), IDS, STATE)
    return hydrated


def with_meta(src: Path, dst: Path, meta: dict[str, Any]) -> ModelBundle:
    """The ranker of ``src`` shipped with another ranker_meta.json."""
    shutil.copytree(src / "ranker", dst / "ranker")
    (dst / "ranker" / "ranker_meta.json").write_text(json.dumps(meta))
    models: ModelSet = load_models(dst, ("ranker",), "ranker")
    return models.get()


def score(bundle: ModelBundle, frame: Frame, weights: dict[str, float] | None = None) -> Any:
    return RANKER.score(bundle, USER, frame, NOW, RankerKnobs(blend_weights=weights))


def top(values: np.ndarray, k: int = 10) -> list[int]:
    return [int(i) for i in np.argsort(-values, kind="stable")[:k]]


# ---- the ranker --------------------------------------------------------------------------


def test_heads_and_default_blend_from_the_model_meta(bundle: Any, frame: Frame) -> None:
    assert RANKER.heads(bundle) == list(HEADS)
    blended, heads = score(bundle, frame)
    assert set(heads) == set(HEADS) and blended.shape == (len(IDS),)
    assert np.all(np.isfinite(blended))  # the unknown item (no year, no genres) too
    # ranker_meta.json ships {"p_interact": 0.7, "p_like": 0.3}
    expected = 0.7 * heads["p_interact"] + 0.3 * heads["p_like"]
    np.testing.assert_allclose(blended, expected, rtol=1e-6)
    for probs in heads.values():
        assert probs.dtype == np.float32 and np.all((probs > 0) & (probs < 1))


def test_meta_weights_rule_over_the_models_own_score(
    bundle_dir: Path, frame: Frame, tmp_path: Path
) -> None:
    weights = {"blend_weights": {"p_interact": 0.2, "p_like": 0.8}}
    blended, heads = score(with_meta(bundle_dir, tmp_path / "like", weights), frame)
    expected = 0.2 * heads["p_interact"] + 0.8 * heads["p_like"]
    np.testing.assert_allclose(blended, expected, rtol=1e-6)
    no_weights = with_meta(bundle_dir, tmp_path / "none", {"heads": list(HEADS)})
    own, heads = score(no_weights, frame)  # the graph's trained "score" output (0.7 / 0.3)
    np.testing.assert_allclose(own, 0.7 * heads["p_interact"] + 0.3 * heads["p_like"], rtol=1e-5)
    assert not np.allclose(own, blended)


def test_blend_weights_knob_changes_the_order(bundle: Any, frame: Frame) -> None:
    like_only, heads = score(bundle, frame, {"p_like": 1.0})
    np.testing.assert_allclose(like_only, heads["p_like"])
    interact_only, heads = score(bundle, frame, {"p_interact": 2.0})
    np.testing.assert_allclose(interact_only, 2.0 * heads["p_interact"])
    assert top(like_only) != top(interact_only)


def test_unknown_head_is_refused(bundle: Any, frame: Frame) -> None:
    with pytest.raises(Refused) as exc:
        score(bundle, frame, {"p_like": 1.0, "p_watch": 1.0})
    assert exc.value.status == 422
    assert exc.value.loc == ("context", "variant", "knobs", "ranker", "blend_weights")
    assert "p_watch" in exc.value.reason and "p_like" in exc.value.reason  # names the heads


def test_empty_frame(bundle: Any) -> None:
    blended, heads = RANKER.score(bundle, USER, Frame([]), NOW, RankerKnobs())
    assert blended.shape == (0,) and set(heads) == set(HEADS)
    assert all(h.shape == (0,) for h in heads.values())


def test_score_depends_on_the_items_not_their_order(bundle: Any, frame: Frame) -> None:
    perm = np.random.default_rng(1).permutation(len(frame))
    blended, _ = score(bundle, frame)
    shuffled, _ = score(bundle, frame.take(perm))
    np.testing.assert_allclose(shuffled, blended[perm], rtol=1e-6)


# ---- the item path -----------------------------------------------------------------------


def assert_same_inputs(bundle: Any, fast: ItemTable, ids: list[str]) -> None:
    cfg = RANKER.model(bundle).config
    batch = asyncio.run(MemoryStore(ITEMS).get_items(ids, NOW))
    ref_table = ItemTable.from_items(list(batch.features), cfg)
    for field in ITEM_TABLE_FIELDS:
        np.testing.assert_array_equal(getattr(fast, field), getattr(ref_table, field), field)
    reference = encode_ranker(USER, ref_table, NOW, cfg)
    got = encode_ranker(USER, fast, NOW, cfg)
    assert reference.keys() == got.keys()
    for name in reference:
        np.testing.assert_array_equal(reference[name], got[name], err_msg=name)


def test_item_table_gives_exactly_the_encoders_inputs(bundle: Any, frame: Frame) -> None:
    """The serving path (frame columns, cached id hashes, per-year encoding) must feed the
    ranker the same tensors as the shared encoders on per-item records."""
    cfg = RANKER.model(bundle).config
    assert_same_inputs(bundle, item_table(frame, cfg), frame.ids)
    shuffled = frame.take(np.random.default_rng(0).permutation(len(frame)))
    assert_same_inputs(bundle, item_table(shuffled, cfg), shuffled.ids)  # cache hits, new order


# ---- the stage ---------------------------------------------------------------------------


async def test_stage_answers_the_score_and_one_column_per_head(models: Any, frame: Frame) -> None:
    stage = RankingStage(models)
    assert set(stage.needs()) <= set(frame)
    result = await stage.run(context(STATE, now=NOW), frame)
    assert set(result.frame) == {"score", *(f"head_{h}" for h in HEADS)}
    assert result.frame.ids == frame.ids and result.info.heads == list(HEADS)
    assert "ranker" in result.info.model and result.info.model.endswith("(@production)")
    expected, heads = score(models.get(), frame)
    np.testing.assert_allclose(result.frame["score"], expected)
    np.testing.assert_allclose(result.frame["head_p_like"], heads["p_like"])


async def test_variant_blend_through_the_stage(models: Any, frame: Frame) -> None:
    variant = VariantSpec(name="likes", knobs={"ranker": {"blend_weights": {"p_like": 1.0}}})
    result = await RankingStage(models).run(context(STATE, now=NOW, variant=variant), frame)
    np.testing.assert_allclose(result.frame["score"], result.frame["head_p_like"])


async def test_unknown_head_over_the_wire_answers_422(models: Any, frame: Frame) -> None:
    stage = RankingStage(models)
    variant = VariantSpec(name="bad", knobs={"ranker": {"blend_weights": {"p_watch": 1.0}}})
    body = StageCodec(stage).encode_request(context(STATE, now=NOW, variant=variant), frame)
    req = FastRequest("POST", stage.path, b"", {b"content-type": MSGPACK.encode()}, body, "t")
    with pytest.raises(RequestError) as exc:
        await stage_route(stage).handler(req)
    assert exc.value.status == 422
    (detail,) = exc.value.detail
    assert detail["loc"] == ["body", "context", "variant", "knobs", "ranker", "blend_weights"]
    assert "p_watch" in detail["msg"]


@pytest.mark.parametrize("ctype", [MSGPACK, JSON])
async def test_wire_round_trip_gives_the_same_scores(models: Any, frame: Frame, ctype: str) -> None:
    stage = RankingStage(models)
    codec = StageCodec(stage)
    ctx, sent = codec.decode_request(codec.encode_request(context(STATE, now=NOW), frame), True)
    assert set(sent) == set(stage.needs())  # only the columns the ranker reads travel
    local = await stage.run(context(STATE, now=NOW), frame)
    remote_run = await stage.run(ctx, sent)
    remote = codec.decode_reply(codec.encode_reply(remote_run, ctype == MSGPACK), ctype, frame.ids)
    assert remote.info == local.info
    for name in local.frame:
        np.testing.assert_array_equal(remote.frame[name], local.frame[name], err_msg=name)
