"""ONNX export: onnxruntime matches PyTorch (< 1e-4) and the inputs match feature_schema.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import shared.features as F
from shared.datasets.movielens import MovieLens
from shared.features.encoders import cross_columns
from training import export
from training.export import (
    PARITY_TOL,
    export_onnx,
    export_ranker,
    export_two_tower,
    quantize_ranker,
)
from training.features.builder import FeatureBuilder
from training.models.factored_ranker import FactoredRanker
from training.models.ranker import RANKER_INPUTS, MMoERanker
from training.models.two_tower import TwoTower


@pytest.fixture(scope="module")
def feeds(
    tiny_data: MovieLens,
) -> tuple[FeatureBuilder, dict[str, np.ndarray], dict[str, np.ndarray]]:
    fb = FeatureBuilder(tiny_data, tiny_data.interactions)
    users = fb.user_inputs(np.arange(12), 8.9e8)
    items = fb.item_inputs(np.arange(20))
    return fb, users, items


def _perturb(model: torch.nn.Module) -> None:
    """Random weights everywhere (a fresh model has zero padding rows only)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))


def test_two_tower_parity_and_schema(feeds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fb, users, items = feeds
    model = TwoTower(fb.cfg, dim=16)
    _perturb(model)
    figs = export_two_tower(model, users, items, tmp_path)
    assert figs["parity_user_tower"] < PARITY_TOL and figs["parity_item_tower"] < PARITY_TOL
    schema = F.build_schema(fb.cfg, 16)
    for name in ("user_tower", "item_tower"):
        sess = ort.InferenceSession(str(tmp_path / f"{name}.onnx"))
        schema.check_onnx_inputs(sess.get_inputs(), name)
    # The encoders' dicts run as they are; batch size is dynamic.
    rec = [F.UserFeatures("1", 24, "M", "technician", "85711", history=["1", "2"])] * 3
    sess = ort.InferenceSession(str(tmp_path / "user_tower.onnx"))
    out = sess.run(None, F.encode_user_tower(rec, 8.9e8))[0]
    assert out.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(F.FeatureSchemaError, match="user_tower"):
        schema.check_onnx_inputs(sess.get_inputs()[:-1], "user_tower")
    with pytest.raises(F.FeatureSchemaError, match="unexpected input"):
        schema.check_onnx_inputs(sess.get_inputs(), "item_tower")


def test_ranker_parity_broadcast_and_schema(feeds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fb, users, _ = feeds
    model = MMoERanker(fb.cfg, TwoTower(fb.cfg, dim=16))
    _perturb(model)
    one_user = {k: v[:1] for k, v in users.items()}
    f = one_user | fb.ranker_item_inputs(np.arange(30), 8.9e8)
    f["cross"] = cross_columns(f["user_genre_affinity"], f["item_genres"])
    f["ease_score"] = np.linspace(0, 0.5, len(f["item_genres"]), dtype=np.float32)
    assert export_ranker(model, f, tmp_path)["parity_ranker"] < PARITY_TOL
    sess = ort.InferenceSession(str(tmp_path / "ranker.onnx"))
    F.build_schema(fb.cfg, 64).check_onnx_inputs(sess.get_inputs(), "ranker")
    # Batch-1 user broadcast equals the user repeated N times.
    rep = dict(f) | {k: np.repeat(v, 30, axis=0) for k, v in one_user.items()}
    a = sess.run(["score"], f)[0]
    b = sess.run(["score"], rep)[0]
    assert a.shape == (30,)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # And the serving encoder's dict feeds it directly.
    items = [F.ItemFeatures(str(i), ["Drama"], 1994) for i in range(7)]
    user = F.UserFeatures("3", 30, "F", "writer", "02139", history=["5"])
    p_int, p_like, score = sess.run(None, F.encode_ranker(user, items, 8.9e8))
    assert p_int.shape == p_like.shape == score.shape == (7,)
    assert ((p_int >= 0) & (p_int <= 1)).all()


@torch.no_grad()
def test_the_factored_ranker_computes_the_trained_function(feeds) -> None:  # type: ignore[no-untyped-def]
    """The serving form (export's) against the training module, for one user broadcast over
    the candidates and for one user row per candidate."""
    fb, users, _ = feeds
    model = MMoERanker(fb.cfg, TwoTower(fb.cfg, dim=16)).eval()
    _perturb(model)
    factored = FactoredRanker(model)
    for u in (slice(0, 1), slice(2, 3)):
        f = {k: v[u] for k, v in users.items()} | fb.ranker_item_inputs(np.arange(25), 8.9e8)
        f["cross"] = cross_columns(f["user_genre_affinity"], f["item_genres"])
        f["ease_score"] = np.linspace(-0.2, 0.5, 25, dtype=np.float32)
        rows = dict(f) | {k: np.repeat(f[k], 25, axis=0) for k in users}
        for batch in (f, rows):
            args = [torch.from_numpy(np.ascontiguousarray(batch[n])) for n in RANKER_INPUTS]
            for want, got in zip(model(*args), factored(*args), strict=True):
                np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
                assert got.shape == (25,)


def test_int8_ranker_is_shipped_only_when_its_top10_agrees(  # type: ignore[no-untyped-def]
    feeds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "INT8_MIN_SPEEDUP", 0.0)  # agreement alone decides here
    fb, users, _ = feeds
    model = MMoERanker(fb.cfg, TwoTower(fb.cfg, dim=16))
    _perturb(model)
    batches = []
    for u in range(4):
        f = {k: v[u : u + 1] for k, v in users.items()} | fb.ranker_item_inputs(
            np.arange(60), 8.9e8
        )
        f["cross"] = cross_columns(f["user_genre_affinity"], f["item_genres"])
        f["ease_score"] = np.linspace(0, 0.5, len(f["item_genres"]), dtype=np.float32)
        batches.append(f)
    export_ranker(model, batches[0], tmp_path)
    figs = quantize_ranker(tmp_path, batches)
    assert figs["ranker_int8_shipped"] == 1.0 and figs["ranker_int8_top10_overlap"] >= 0.9
    int8 = ort.InferenceSession(str(tmp_path / "ranker_int8.onnx"))
    F.build_schema(fb.cfg, 64).check_onnx_inputs(int8.get_inputs(), "ranker")  # same inputs
    ops = {n.op_type for n in onnx.load(str(tmp_path / "ranker_int8.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops  # int8 kernels, really
    fp32 = ort.InferenceSession(str(tmp_path / "ranker.onnx"))
    a, b = (s.run(["score"], batches[1])[0] for s in (fp32, int8))
    assert 0 < np.max(np.abs(a - b)) <= figs["ranker_int8_max_abs_score_diff"] + 1e-5
    assert figs["ranker_int8_max_abs_score_diff"] < 0.1  # close, not identical


def test_an_int8_ranker_that_disagrees_is_not_shipped(  # type: ignore[no-untyped-def]
    feeds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fb, users, _ = feeds
    model = MMoERanker(fb.cfg, TwoTower(fb.cfg, dim=16))
    _perturb(model)
    f = {k: v[:1] for k, v in users.items()} | fb.ranker_item_inputs(np.arange(60), 8.9e8)
    f["cross"] = cross_columns(f["user_genre_affinity"], f["item_genres"])
    f["ease_score"] = np.linspace(0, 0.5, len(f["item_genres"]), dtype=np.float32)
    export_ranker(model, f, tmp_path)
    monkeypatch.setattr(export, "INT8_MIN_SPEEDUP", 0.0)
    monkeypatch.setattr(export, "INT8_MIN_TOP10_OVERLAP", 1.01)  # no copy can agree enough
    figs = quantize_ranker(tmp_path, [f])
    assert figs["ranker_int8_shipped"] == 0.0
    assert not (tmp_path / "ranker_int8.onnx").exists() and (tmp_path / "ranker.onnx").is_file()
    # an int8 copy that agrees but is not faster is not shipped either
    monkeypatch.setattr(export, "INT8_MIN_TOP10_OVERLAP", 0.0)
    monkeypatch.setattr(export, "INT8_MIN_SPEEDUP", 1000.0)
    figs = quantize_ranker(tmp_path, [f])
    assert figs["ranker_int8_shipped"] == 0.0 and not (tmp_path / "ranker_int8.onnx").exists()
    assert figs["ranker_fp32_cpu_ms"] > 0 and figs["ranker_int8_cpu_ms"] > 0
    with pytest.raises(ValueError, match="no batch"):
        quantize_ranker(tmp_path, [])


def test_tied_weights_are_untied_before_quantization(tmp_path: Path) -> None:
    """Two heads whose last layers are equal: the exporter stores the weight once (an Identity
    feeds the second Gemm), and the quantizer would transpose it twice without the untie."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Linear(8, 32)
            self.a, self.b = torch.nn.Linear(32, 1), torch.nn.Linear(32, 1)
            with torch.no_grad():
                self.b.weight.copy_(self.a.weight)
                self.b.bias.copy_(self.a.bias)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = torch.relu(self.body(x))
            return self.a(h), self.b(h)

    x = {"x": np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)}
    src, untied = tmp_path / "m.onnx", tmp_path / "untied.onnx"
    export_onnx(TwoHeads(), x, ("x",), ("a", "b"), {"x": {0: "N"}}, src)
    ops = [n.op_type for n in onnx.load(str(src)).graph.node]
    assert "Identity" in ops  # the tie this test is about
    with pytest.raises(Exception, match="Incompatible dimensions"):
        quantize_dynamic(src, tmp_path / "broken.onnx", weight_type=QuantType.QInt8)
        ort.InferenceSession(str(tmp_path / "broken.onnx"))
    export._untie_gemm_weights(src, untied)
    quantize_dynamic(untied, tmp_path / "q.onnx", weight_type=QuantType.QInt8)
    ref = ort.InferenceSession(str(src)).run(None, x)
    got = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, x)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, atol=0.05)
