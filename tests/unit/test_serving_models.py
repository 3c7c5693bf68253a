"""Model loading for serving: the schema check, warm-up before going live, readiness, hot
swap, and item cold start (a new item embedded by the item tower, in the index at once)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.gateway.pipeline import warm_up_all
from shared.features.config import FEATURE_VERSION
from shared.features.schema import FeatureSchema
from shared.model_loading import (
    PARTS,
    LocalModels,
    ModelBundle,
    ModelHolder,
    load_bundle,
    warmup_feeds,
)
from shared.online_store.types import ItemRecord
from shared.pipeline.item_indexer import ItemIndexer
from tests.integration.serving_fixtures import (
    MemoryStore,
    catalog,
    load_models,
    write_synthetic_bundle,
)

ITEMS = catalog(80)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_synthetic_bundle(tmp_path / "models", ITEMS)


def _edit_schema(path: Path, edit: Any) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


async def test_ready_only_after_load_and_prepare(bundle: Path) -> None:
    seen: list[str] = []
    holder = ModelHolder(
        LocalModels(bundle), PARTS, poll_s=0, prepare=lambda b: seen.append(b.bundle_id)
    )
    ok, reason = await holder.check()
    assert not ok and reason == "models not loaded yet"
    assert holder.load_now()
    ok, reason = await holder.check()
    assert ok and "ranker=synthetic-1" in reason and f"ranker from {bundle / 'ranker'}" in reason
    assert seen == ["synthetic-1"]  # prepared (warmed up) before it went live


@pytest.mark.parametrize(
    ("int8_shipped", "precision", "loaded"),
    [
        (True, "int8", "ranker_int8.onnx"),
        (True, "fp32", "ranker.onnx"),
        (False, "int8", "ranker.onnx"),  # an older bundle, or an int8 copy that disagreed
    ],
)
async def test_ranker_precision(
    bundle: Path, int8_shipped: bool, precision: str, loaded: str
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = bundle / "ranker"
    if int8_shipped:
        quantize_dynamic(folder / "ranker.onnx", folder / "ranker_int8.onnx",
                         weight_type=QuantType.QInt8)  # fmt: skip
    holder = ModelHolder(LocalModels(bundle), PARTS, poll_s=0, ranker_precision=precision)
    assert holder.load_now()
    ranker = holder.require().ranker
    assert ranker is not None and ranker.file == loaded
    ok, reason = await holder.check()
    assert ok and f"ranker from {folder} ({loaded})" in reason  # readiness says which one
    feeds = warmup_feeds(FeatureSchema.load(folder / "feature_schema.json"), "ranker")
    assert ranker.run(feeds)["score"].shape == (len(feeds["item_id_hash"]),)


def test_model_inputs_are_checked_against_the_feature_schema(bundle: Path) -> None:
    def drop_cross(d: dict[str, Any]) -> None:
        d["models"]["ranker"]["inputs"] = [
            i for i in d["models"]["ranker"]["inputs"] if i["name"] != "cross"
        ]

    _edit_schema(bundle / "ranker" / "feature_schema.json", drop_cross)
    holder = ModelHolder(LocalModels(bundle), PARTS, poll_s=0)
    assert not holder.load_now()
    assert "ranker.onnx" in holder.error and "cross" in holder.error


def test_feature_version_mismatch_is_refused(bundle: Path) -> None:
    def bump(d: dict[str, Any]) -> None:
        d["version"] = FEATURE_VERSION + "-next"

    _edit_schema(bundle / "user_tower" / "feature_schema.json", bump)
    with pytest.raises(Exception, match="feature version"):
        load_bundle(LocalModels(bundle).paths(), PARTS)


def test_failed_prepare_or_load_keeps_the_serving_bundle(bundle: Path) -> None:
    calls = {"n": 0}

    def prepare(b: ModelBundle) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("warm-up blew up")

    holder = ModelHolder(LocalModels(bundle), PARTS, poll_s=0, prepare=prepare)
    assert holder.load_now()
    first = holder.require()
    for part in ("user_tower", "item_index", "ranker"):
        (bundle / part / "manifest.json").write_text(json.dumps({"bundle_id": "synthetic-2"}))
    assert not holder.load_now() and "warm-up blew up" in holder.error
    assert holder.require() is first  # still serving the old one
    calls["n"] = -10
    assert holder.load_now() and holder.require().versions()["ranker"] == "synthetic-2"


def test_hot_swap_only_when_the_version_moves(bundle: Path) -> None:
    holder = load_models(bundle)
    assert not holder.load_now()  # same fingerprint: nothing reloaded
    new = write_synthetic_bundle(bundle.parent / "v2", ITEMS, bundle_id="synthetic-2", seed=5)
    shutil.rmtree(bundle)
    new.rename(bundle)
    assert holder.load_now() and holder.require().bundle_id == "synthetic-2"


def test_warm_up_runs_every_stage_on_a_bundle(bundle: Path) -> None:
    holder = load_models(bundle)
    start = time.perf_counter()
    warm_up_all(holder.require())
    assert time.perf_counter() - start < 30


async def test_new_item_is_embedded_and_retrievable_at_once(bundle: Path) -> None:
    holder = load_models(bundle, ("user_tower", "item_index"))
    store = MemoryStore(ITEMS)
    indexer = ItemIndexer(store, holder.require)
    index = holder.require().index
    n = len(index)
    record = ItemRecord(
        "brand-new", genres=("Animation", "Children's"), release_year=1999, added_ts=time.time()
    )
    label = await indexer.add(record)
    assert label == n and len(index) == n + 1 and store.items["brand-new"] == record
    emb = index.embeddings(["brand-new"])
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-4)  # the item tower's output
    labels, sims = index.search(emb, 3)
    assert index.ids(labels[0])[0] == "brand-new" and sims[0][0] == pytest.approx(1.0, abs=1e-3)
    for j in range(40):  # past the index's initial capacity: it grows, no rebuild
        await indexer.add(ItemRecord(f"more-{j}", genres=("Drama",)))
    assert len(index) == n + 41 and index.search(index.embeddings(["more-39"]), 1)[1][0][0] > 0.99


async def test_index_sync_and_hot_swap_keep_runtime_items(bundle: Path) -> None:
    holder = load_models(bundle, ("user_tower", "item_index"))
    now = time.time()
    store = MemoryStore([*ITEMS, ItemRecord("elsewhere", genres=("Drama",), added_ts=now - 60)])
    indexer = ItemIndexer(store, holder.require)
    assert await indexer.sync(now, lookback_s=3600) == 1  # added by another replica
    assert holder.require().index.rows(["elsewhere"])[0] >= 0
    assert await indexer.sync(now, lookback_s=3600) == 0
    fresh = load_bundle(
        LocalModels(bundle, ("user_tower", "item_index")).paths(), ("user_tower", "item_index")
    )
    assert fresh.index is not None and fresh.index.rows(["elsewhere"])[0] == -1
    indexer.reapply(fresh)  # what the holder's prepare hook does before a swap
    assert fresh.index.rows(["elsewhere"])[0] >= 0
