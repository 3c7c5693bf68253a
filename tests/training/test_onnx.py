"""ONNX export: onnxruntime matches PyTorch (< 1e-4) and the inputs match feature_schema.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import shared.features as F
from shared.features.encoders import cross_columns
from training.data.movielens import MovieLens
from training.export import PARITY_TOL, export_ranker, export_two_tower
from training.features.builder import FeatureBuilder
from training.models.ranker import MMoERanker
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
