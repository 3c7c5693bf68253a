"""Model serving: loading a bundle (schema check, corrupt file, feature version, pairing,
ranker precision), warm-up before going live, readiness, hot swap, the ModelSet's aliases
(on-demand loads, refusals, the bound on versions held, shared copies, the held gauge, a
failed reload keeping the old version) and item cold start in the index."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from services.candidate_generation.warmup import warm_up_retrieval
from services.ranking.warmup import warm_up_ranker
from services.reranking.warmup import warm_up_rerank
from shared.features import GENRES, UserFeatures, encode_user_tower
from shared.features.config import FEATURE_VERSION
from shared.features.schema import FeatureSchema
from shared.models.bundle import PARTS, ModelBundle, load_bundle
from shared.models.item_indexer import ItemIndexer
from shared.models.locators import LocalModels, locate_models
from shared.models.model_set import ModelNotHeld, ModelSet
from shared.models.onnx_model import ModelLoadError, warmup_feeds
from shared.online_store.types import ItemRecord
from tests.integration.serving_fixtures import (
    MemoryStore,
    catalog,
    load_models,
    write_synthetic_bundle,
)

ITEMS = catalog(80)
RETRIEVAL = ("user_tower", "item_index")
_services = itertools.count()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_synthetic_bundle(tmp_path / "models", ITEMS)


def other_bundle(tmp_path: Path, name: str, seed: int) -> Path:
    """Another trained version (its own bundle id and weights)."""
    return write_synthetic_bundle(tmp_path / name, ITEMS, bundle_id=f"synthetic-{name}", seed=seed)


def model_set(
    production: Path,
    alias_dirs: dict[str, Path] | None = None,
    parts: tuple[str, ...] = PARTS,
    **kw: Any,
) -> ModelSet:
    """A ModelSet over local folders, not polling, with a service name of its own (gauges)."""
    dirs = {alias: str(p) for alias, p in (alias_dirs or {}).items()}
    locate = locate_models(str(production), dirs, "", "", parts)
    kw.setdefault("service", f"test-models-{next(_services)}")
    return ModelSet("retrieval", locate, parts, poll_s=0, **kw)


def edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def republish(folder: Path, bundle_id: str, parts: Iterable[str] = PARTS) -> None:
    """Give the parts of ``folder`` a new bundle id (the version behind its alias moved)."""
    for part in parts:
        (folder / part / "manifest.json").write_text(json.dumps({"bundle_id": bundle_id}))


def held_gauge(models: ModelSet, alias: str, label: str) -> float | None:
    labels = {"service": models.service, "slot": models.slot, "alias": alias, "model": label}
    return REGISTRY.get_sample_value("cascade_models_held", labels)


def user_embedding(b: ModelBundle) -> np.ndarray:
    """The user tower's output for one Drama lover (to tell versions apart)."""
    assert b.user_tower is not None
    user = UserFeatures("u", age=30, genre_affinity=[1.0 if g == "Drama" else 0.0 for g in GENRES])
    return b.user_tower.run(encode_user_tower([user], 1.7e9, b.user_tower.config))["user_embedding"]


async def eventually(done: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Wait for the background work of a started ModelSet (a bound on waiting, not a test of
    speed)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.02)


def not_held(models: ModelSet, alias: str) -> ModelNotHeld:
    with pytest.raises(ModelNotHeld) as exc:
        models.get(alias)
    return exc.value


# ---- loading one bundle ------------------------------------------------------------------


async def test_ready_only_after_load_and_prepare(bundle: Path) -> None:
    prepared: list[tuple[str, bool]] = []

    def prepare(b: ModelBundle) -> None:
        prepared.append((b.bundle_id, "production" in models.held()))

    models = model_set(bundle, prepare=prepare)
    ok, reason = await models.check()
    assert not ok and reason.startswith("models not loaded yet")
    assert "not loaded" in not_held(models, "production").reason
    assert models.load_now()
    ok, reason = await models.check()
    assert ok and reason.startswith("ok; production: ")
    assert str(bundle / "ranker") in reason and "(@production)" in reason
    assert prepared == [("synthetic-1", False)]  # prepared (warmed up) before it went live
    assert models.get().bundle_id == "synthetic-1"


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
        int8 = folder / "ranker_int8.onnx"
        quantize_dynamic(folder / "ranker.onnx", int8, weight_type=QuantType.QInt8)
    models = model_set(bundle, ranker_precision=precision)
    assert models.load_now(), models.error
    ranker = models.get().ranker
    assert ranker is not None and ranker.file == loaded
    ok, reason = await models.check()
    assert ok and f"({loaded})" in reason  # readiness says which file serves
    feeds = warmup_feeds(FeatureSchema.load(folder / "feature_schema.json"), "ranker")
    assert ranker.run(feeds)["score"].shape == (len(feeds["item_id_hash"]),)


async def test_model_inputs_are_checked_against_the_feature_schema(bundle: Path) -> None:
    def drop_cross(d: dict[str, Any]) -> None:
        d["models"]["ranker"]["inputs"] = [
            i for i in d["models"]["ranker"]["inputs"] if i["name"] != "cross"
        ]

    edit_json(bundle / "ranker" / "feature_schema.json", drop_cross)
    models = model_set(bundle)
    assert not models.load_now()
    assert "ranker.onnx" in models.error and "cross" in models.error
    ok, reason = await models.check()
    assert not ok and "cross" in reason  # readiness says why
    assert "cross" in not_held(models, "production").reason


def test_corrupt_model_file_is_refused(bundle: Path) -> None:
    (bundle / "user_tower" / "user_tower.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        load_bundle(LocalModels(bundle).paths(), PARTS)
    models = model_set(bundle)
    assert not models.load_now() and "user_tower.onnx" in models.error


def test_missing_model_file_is_refused(bundle: Path) -> None:
    (bundle / "ranker" / "ranker.onnx").unlink()
    with pytest.raises(ModelLoadError, match="model file not found"):
        load_bundle(LocalModels(bundle).paths(), PARTS)


def test_feature_version_mismatch_is_refused(bundle: Path) -> None:
    def bump(d: dict[str, Any]) -> None:
        d["version"] = FEATURE_VERSION + "-next"

    edit_json(bundle / "user_tower" / "feature_schema.json", bump)
    with pytest.raises(ModelLoadError, match="feature version"):
        load_bundle(LocalModels(bundle).paths(), PARTS)


def test_user_tower_and_index_must_come_from_one_training_run(bundle: Path) -> None:
    republish(bundle, "synthetic-other", ("user_tower",))
    with pytest.raises(ModelLoadError, match="different training runs"):
        load_bundle(LocalModels(bundle).paths(), RETRIEVAL)
    # the ranker is trained on its own: a ranker of another run pairs with anything
    republish(bundle, "synthetic-other", ("item_index",))
    republish(bundle, "synthetic-ranker", ("ranker",))
    loaded = load_bundle(LocalModels(bundle).paths(), PARTS)
    assert loaded.versions()["ranker"] == "synthetic-ranker"


def test_only_the_asked_parts_are_loaded(bundle: Path) -> None:
    loaded = load_bundle(LocalModels(bundle, ("ranker",)).paths(), ("ranker",))
    assert loaded.ranker is not None and loaded.user_tower is None and loaded.index is None
    with pytest.raises(ModelLoadError, match="unknown model parts"):
        load_bundle(LocalModels(bundle).paths(), ("ranker", "reranker"))


def test_failed_prepare_keeps_the_serving_bundle(bundle: Path) -> None:
    calls = {"n": 0}

    def prepare(b: ModelBundle) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("warm-up blew up")

    models = model_set(bundle, prepare=prepare)
    assert models.load_now()
    first = models.get()
    republish(bundle, "synthetic-2")
    assert not models.load_now() and "warm-up blew up" in models.error
    assert models.get() is first  # still serving the old one
    assert models.load_now() and models.get().versions()["ranker"] == "synthetic-2"
    assert models.error == ""


def test_hot_swap_only_when_the_version_moves(bundle: Path) -> None:
    models = load_models(bundle)
    first = models.get()
    assert not models.load_now()  # same fingerprint: nothing reloaded
    assert models.get() is first
    new = write_synthetic_bundle(bundle.parent / "v2", ITEMS, bundle_id="synthetic-2", seed=5)
    shutil.rmtree(bundle)
    new.rename(bundle)
    assert models.load_now() and models.get().bundle_id == "synthetic-2"
    assert first.bundle_id == "synthetic-1"  # a request holding the old one finishes on it


def test_warm_up_runs_every_stage_on_a_bundle_and_leaves_no_trace(bundle: Path) -> None:
    def prepare(b: ModelBundle) -> None:
        warm_up_retrieval(b)
        warm_up_rerank(b)
        warm_up_ranker(b)

    models = model_set(bundle, prepare=prepare)
    assert models.load_now(), models.error
    index = models.get().index
    assert index is not None and len(index) == len(ITEMS)  # warm-up items are never indexed
    assert index.rows(["warmup"])[0] == -1


# ---- the model set: aliases --------------------------------------------------------------


async def test_another_alias_loads_on_demand(tmp_path: Path, bundle: Path) -> None:
    canary = other_bundle(tmp_path, "canary", seed=5)
    models = model_set(bundle, {"canary": canary})
    await models.start()
    try:
        await eventually(lambda: "production" in models.held(), "production")
        first = not_held(models, "canary")
        assert first.retry and first.status == 503 and first.retry_after_s > 0
        assert first.loc == ("context", "variant", "models", "retrieval")
        assert "loading" in first.reason
        await eventually(lambda: "canary" in models.held(), "canary")
        production, other = models.get(), models.get("canary")
        assert other.bundle_id == "synthetic-canary" and production.bundle_id == "synthetic-1"
        assert not np.allclose(user_embedding(other), user_embedding(production))
        assert other.labels["ranker"].endswith("(@canary)")
    finally:
        await models.stop()


async def test_alias_without_a_bundle_is_refused_and_production_serves(bundle: Path) -> None:
    models = model_set(bundle)
    await models.start()
    try:
        await eventually(lambda: "production" in models.held(), "production")
        assert not_held(models, "shadow").retry  # not known yet: a load is tried
        await eventually(lambda: not not_held(models, "shadow").retry, "the failed load")
        refused = not_held(models, "shadow")
        assert refused.status == 422 and "no local bundle for alias 'shadow'" in refused.reason
        assert models.get().bundle_id == "synthetic-1"
        assert (await models.check())[0]
    finally:
        await models.stop()


def test_an_invalid_alias_name_is_refused(bundle: Path) -> None:
    models = load_models(bundle)
    refused = not_held(models, "../etc")
    assert refused.status == 422 and "not a valid alias" in refused.reason


def test_max_held_evicts_the_least_recently_used(tmp_path: Path, bundle: Path) -> None:
    dirs = {name: other_bundle(tmp_path, name, seed) for seed, name in enumerate("abc", 1)}
    models = model_set(bundle, dirs, max_held=3)
    assert models.load_now() and models.load_now("a") and models.load_now("b")
    models.get("a")  # "b" is now the least recently used
    assert models.load_now("c")
    assert set(models.held()) == {"production", "a", "c"} and len(models.bundles()) == 3
    assert models.load_now("b")  # evicted, not broken: it loads again, in place of "a"
    assert set(models.held()) == {"production", "b", "c"}


def test_max_held_never_evicts_what_is_followed(tmp_path: Path, bundle: Path) -> None:
    dirs = {"canary": other_bundle(tmp_path, "canary", 1), "x": other_bundle(tmp_path, "x", 2)}
    models = model_set(bundle, dirs, follow=("production", "canary"), max_held=2)
    assert models.load_now() and models.load_now("canary")
    assert not models.load_now("x")
    refused = not_held(models, "x")
    assert refused.status == 422 and "the maximum" in refused.reason
    assert set(models.held()) == {"production", "canary"}


def test_a_failed_load_evicts_nothing(tmp_path: Path, bundle: Path) -> None:
    """Room is made for a version that passed its checks, not for one that fails them."""
    dirs = {"a": other_bundle(tmp_path, "a", 1), "x": other_bundle(tmp_path, "x", 2)}
    (dirs["x"] / "ranker" / "ranker.onnx").write_bytes(b"truncated")
    models = model_set(bundle, dirs, max_held=2)
    assert models.load_now() and models.load_now("a")
    assert not models.load_now("x")
    assert set(models.held()) == {"production", "a"}  # "a" still serves its variant
    assert models.get("a").bundle_id == "synthetic-a"


def test_aliases_at_the_same_version_share_one_copy(bundle: Path) -> None:
    models = model_set(bundle, {"canary": bundle}, max_held=1)
    assert models.load_now() and models.load_now("canary")  # no room needed for a twin
    assert set(models.held()) == {"production", "canary"} and len(models.bundles()) == 1
    production, canary = models.get(), models.get("canary")
    assert canary.ranker is production.ranker and canary.index is production.index
    assert canary.labels["ranker"].endswith("(@canary)")
    assert production.labels["ranker"].endswith("(@production)")


async def test_readiness_lists_what_is_held(tmp_path: Path, bundle: Path) -> None:
    canary = other_bundle(tmp_path, "canary", 5)
    models = model_set(bundle, {"canary": canary}, follow=("canary", "shadow"))
    assert models.load_now() and models.load_now("canary") and not models.load_now("shadow")
    ok, reason = await models.check()
    assert ok
    assert f"production: {', '.join(models.get().labels.values())}" in reason
    assert f"canary: {', '.join(models.get('canary').labels.values())}" in reason
    assert "shadow: none (no local bundle for alias 'shadow'" in reason  # followed, absent


def test_held_gauge_follows_what_is_held(tmp_path: Path, bundle: Path) -> None:
    dirs = {"a": other_bundle(tmp_path, "a", 1), "b": other_bundle(tmp_path, "b", 2)}
    models = model_set(bundle, dirs, max_held=2)
    assert models.load_now() and models.load_now("a")
    label_a = models.get("a").labels["ranker"]
    assert held_gauge(models, "production", models.get().labels["ranker"]) == 1.0
    assert held_gauge(models, "a", label_a) == 1.0
    assert models.load_now("b")  # evicts "a"
    assert held_gauge(models, "a", label_a) is None
    assert held_gauge(models, "b", models.get("b").labels["ranker"]) == 1.0


def test_failed_reload_keeps_the_old_version_serving(tmp_path: Path, bundle: Path) -> None:
    canary = other_bundle(tmp_path, "canary", 5)
    models = model_set(bundle, {"canary": canary})
    assert models.load_now() and models.load_now("canary")
    old = models.get("canary")
    (canary / "ranker" / "ranker.onnx").write_bytes(b"truncated")
    republish(canary, "synthetic-canary-2")
    assert not models.load_now("canary")
    assert models.get("canary") is old and old.bundle_id == "synthetic-canary"
    assert held_gauge(models, "canary", old.labels["ranker"]) == 1.0
    assert models.error == ""  # production is fine: still ready


async def test_failed_production_reload_keeps_it_serving_and_ready(bundle: Path) -> None:
    models = load_models(bundle)
    old = models.get()
    (bundle / "item_index" / "item_tower.onnx").write_bytes(b"truncated")
    republish(bundle, "synthetic-2")
    assert not models.load_now()
    assert models.get() is old and "item_tower.onnx" in models.error
    ok, _ = await models.check()
    assert ok  # the held version still serves


# ---- item cold start ---------------------------------------------------------------------


async def test_new_item_is_embedded_and_retrievable_at_once(bundle: Path) -> None:
    models = load_models(bundle, RETRIEVAL, "retrieval")
    store = MemoryStore(ITEMS)
    indexer = ItemIndexer(store, models.bundles)
    index = models.get().index
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


async def test_new_item_goes_into_every_held_version(tmp_path: Path, bundle: Path) -> None:
    models = model_set(bundle, {"canary": other_bundle(tmp_path, "canary", 5)}, RETRIEVAL)
    assert models.load_now() and models.load_now("canary")
    await ItemIndexer(MemoryStore(ITEMS), models.bundles).add(ItemRecord("x1", genres=("Drama",)))
    for alias in ("production", "canary"):
        index = models.get(alias).index
        assert index is not None and index.rows(["x1"])[0] >= 0, alias


async def test_index_sync_and_hot_swap_keep_runtime_items(bundle: Path) -> None:
    models = load_models(bundle, RETRIEVAL, "retrieval")
    now = time.time()
    store = MemoryStore([*ITEMS, ItemRecord("elsewhere", genres=("Drama",), added_ts=now - 60)])
    indexer = ItemIndexer(store, models.bundles)
    assert await indexer.sync(now, lookback_s=3600) == 1  # added by another replica
    assert models.get().index.rows(["elsewhere"])[0] >= 0
    assert await indexer.sync(now, lookback_s=3600) == 0
    fresh = load_bundle(LocalModels(bundle, RETRIEVAL).paths(), RETRIEVAL)
    assert fresh.index is not None and fresh.index.rows(["elsewhere"])[0] == -1
    indexer.reapply(fresh)  # what the set's prepare hook does before a swap
    assert fresh.index.rows(["elsewhere"])[0] >= 0


async def test_hot_swap_through_the_set_keeps_runtime_items(bundle: Path) -> None:
    indexer: ItemIndexer
    models = model_set(bundle, parts=RETRIEVAL, prepare=lambda b: indexer.reapply(b))
    indexer = ItemIndexer(MemoryStore(ITEMS), models.bundles)
    assert models.load_now()
    await indexer.add(ItemRecord("runtime", genres=("Drama",)))
    republish(bundle, "synthetic-2", RETRIEVAL)
    assert models.load_now() and models.get().bundle_id == "synthetic-2"
    swapped = models.get().index
    assert swapped is not None and swapped.rows(["runtime"])[0] >= 0
