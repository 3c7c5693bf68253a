"""End to end on the tiny fixture: train → evaluate → export → register on a real MLflow server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import shared.models.registry as reg
from shared.features.schema import FeatureSchema
from tests.training.conftest import FIXTURE
from training import pipeline
from training.config import tiny_config
from training.registry import RegistrationError, log_and_register

NAMES = ("cascade-user-tower", "cascade-item-index", "cascade-ranker")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mlflow_tracking_uri: str) -> dict:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    try:
        metrics = pipeline.run(
            tiny_config(7), FIXTURE / "recbole", root / "models", root / "reports", True
        )
    finally:
        mp.undo()
    return {"root": root, "metrics": metrics, "uri": mlflow_tracking_uri}


def test_report_and_bundle(trained: dict) -> None:  # type: ignore[type-arg]
    root: Path = trained["root"]
    report = json.loads((root / "reports" / "evaluation.json").read_text())
    assert set(report) == {"temporal", "recbole"}
    ranking = {"ndcg@10", "map@10", "mrr@10", "hit@10", "precision@10", "recall@10"}
    for split in report.values():
        baselines = ("popularity", "als", "item_knn", "item_knn_per_source", "ease", "ease_sparse")
        assert {*baselines, "two_tower", "pipeline"} <= set(split)
        for model in (*baselines, "two_tower"):  # retrieval depths
            assert ranking | {f"recall@{k}" for k in (50, 100, 500)} <= set(split[model]), model
        pipe = split["pipeline"]
        assert ranking | {"recall@50", "auc_interact", "auc_like", "coverage@10", "ild@10"} <= set(
            pipe
        )
        assert 0 < pipe["coverage@10"] <= 1 and 0 < pipe["ild@10"] <= 1
        assert 0 <= pipe["auc_interact"] <= 1 and 0 <= pipe["auc_like"] <= 1
        assert 0 < pipe["candidate_recall_two_tower"] <= pipe["candidate_recall"] <= 1
        # per-stage attribution: the seen filter and the ranker only lose relevant items
        assert pipe["stage_filtered_items"] <= pipe["stage_retrieval_items"]
        assert pipe["stage_filtered_recall"] <= pipe["stage_retrieval_recall"]
        assert pipe["stage_filtered_recall"] == pytest.approx(pipe["candidate_recall"])
        assert pipe["stage_ranked_recall@50"] <= pipe["stage_filtered_recall"] + 1e-9
        assert pipe["stage_reranked_ndcg@10"] == pytest.approx(pipe["ndcg@10"])
    md = (root / "reports" / "evaluation.md").read_text()
    assert "## temporal" in md and "## recbole" in md and "| pipeline |" in md
    assert "| after filtering (seen removed) |" in md
    assert (root / "reports" / "recall_at_k.png").stat().st_size > 1000
    m = root / "models"
    for f in (
        "user_tower/user_tower.onnx",
        "item_index/item_tower.onnx",
        "item_index/hnsw_index.bin",
        "item_index/item_embeddings.npy",
        "item_index/item_ids.json",
        "item_index/index_meta.json",
        "item_index/item_item.npz",
        "item_index/item_item_meta.json",
        "ranker/ranker.onnx",
        "ranker/ranker_meta.json",
        "feature_schema.json",
        "manifest.json",
    ):
        assert (m / f).is_file(), f
    emb = np.load(m / "item_index/item_embeddings.npy")
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert len(json.loads((m / "item_index/item_ids.json").read_text())) == len(emb)
    meta = json.loads((m / "item_index/index_meta.json").read_text())
    assert {"M", "ef_construction", "ef_search", "space"} <= set(meta)
    schema = FeatureSchema.load(m / "feature_schema.json")
    schema.check_onnx_inputs(
        ort.InferenceSession(str(m / "ranker/ranker.onnx")).get_inputs(), "ranker"
    )
    local = reg.load_local(m / "ranker")
    assert local.version == "local" and local.manifest["bundle_id"]
    # served EASE top list vs the training-side scores of the same weights, checked at export
    assert local.manifest["export"]["parity_item_item"] < 1e-4
    meta = json.loads((m / "ranker/ranker_meta.json").read_text())
    assert (
        meta["like_weight"] == 1.0 and meta["training"]["rows"] > meta["training"]["positives"] > 0
    )


def test_registered_with_alias_and_tags(trained: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    uri = trained["uri"]
    bundle_ids, versions = set(), {}
    for name in NAMES:
        v = versions[name] = reg.current_version(name, "production", uri)
        got = reg.resolve_and_download(name, "production", uri, tmp_path / "cache")
        assert got.version == v and got.run_id
        assert got.tags["data_fingerprint"] and got.tags["feature_schema_version"] == "1"
        assert (got.path / "feature_schema.json").is_file() and (
            got.path / "manifest.json"
        ).is_file()
        bundle_ids.add(got.tags["bundle_id"])
    assert len(bundle_ids) == 1  # the three versions come from one training run
    # each registered model numbers its own versions (another test may have added a ranker)
    index_version = versions["cascade-item-index"]
    for f in ("hnsw_index.bin", "item_item.npz"):  # the EASE weights travel with the index
        assert (tmp_path / "cache" / "cascade-item-index" / index_version / f).is_file()


def test_failed_registration_leaves_nothing(trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    from mlflow.tracking import MlflowClient

    uri = trained["uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    before = {n: len(client.search_model_versions(f"name='{n}'")) for n in NAMES}
    prod = {n: reg.current_version(n, "production", uri) for n in NAMES}
    calls = {"n": 0}
    real = MlflowClient.set_registered_model_alias

    def flaky(self, name, alias, version):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated registry failure")
        return real(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", flaky)
    parts = {
        p: trained["root"] / "models" / p.replace("-", "_")
        for p in ("user-tower", "item-index", "ranker")
    }
    with pytest.raises(RegistrationError, match="rolled back"):
        log_and_register(parts, [], {}, {}, {"bundle_id": "x"}, uri)
    monkeypatch.undo()
    assert {n: len(client.search_model_versions(f"name='{n}'")) for n in NAMES} == before
    assert {n: reg.current_version(n, "production", uri) for n in NAMES} == prod


def test_unreachable_mlflow_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(reg.RegistryUnavailableError, match="MLFLOW_TRACKING_URI"):
        reg.current_version("cascade-ranker")
    rc = pipeline.main(
        [
            "--tiny",
            "--data",
            str(FIXTURE / "recbole"),
            "--out",
            str(tmp_path / "m"),
            "--reports",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 1
    assert "unreachable at http://127.0.0.1:9 (setting MLFLOW_TRACKING_URI)" in caplog.text
    assert not (tmp_path / "m").exists()  # failed before training: nothing written


def test_missing_data_fails_clearly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rc = pipeline.main(
        ["--tiny", "--no-register", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "m")]
    )
    assert rc == 1 and "data directory not found" in caplog.text
