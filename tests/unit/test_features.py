"""shared.features: determinism, one definition online/offline, point-in-time, schema checks."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import shared.features as F
from shared.features.encoders import cross_columns


def test_hash_buckets_are_pinned() -> None:
    """Every trained model's embedding rows are addressed by these values: a change to the
    hashing (however it is computed) must fail here before it silently breaks the models."""
    got = F.hash_buckets(["242", "u1", "1", "new-7"], 20_000, "item").tolist()
    assert got == [[2730, 8716], [12522, 17019], [4370, 13960], [8190, 19997]]
    assert F.hash_buckets(["242"], 4096, "profile:zip", 1).tolist() == [[456]]
    many = F.hash_buckets([str(i) for i in range(300)], 50_000, "user", 3)
    assert many.shape == (300, 3) and many.dtype == np.int64
    assert many.min() >= 1 and many.max() < 50_000


def test_hash_is_stable_across_processes() -> None:
    here = F.hash_buckets(["242", "u1"], 20_000, "item").tolist()
    code = (
        "import shared.features as F; print(F.hash_buckets(['242', 'u1'], 20_000, 'item').tolist())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})  # fmt: skip
    assert other.stdout.strip() == str(here)
    b = F.hash_buckets([str(i) for i in range(5000)], 100, "x", 2)
    assert b.shape == (5000, 2) and b.min() >= 1 and b.max() < 100  # 0 is padding
    assert not np.array_equal(b[:, 0], b[:, 1])  # the two hashes differ


def test_profile_and_item_encoders() -> None:
    assert [F.age_bucket(a) for a in (7, 18, 24, 25, 44, 49, 55, 56, None)] == [
        "<18", "18-24", "18-24", "25-34", "35-44", "45-49", "50-55", "56+", "unknown"]  # fmt: skip
    assert F.zip_prefix("t8h1n") == "T8H" and F.zip_prefix(None) == "unknown"
    v = F.genre_multi_hot(["Comedy", "sci-fi", "nonsense"])
    assert v.sum() == 2 and v[F.GENRES.index("Sci-Fi")] == 1
    assert F.year_features(2000) == (1.0, 0.0) and F.year_features(None) == (0.0, 1.0)


def test_cyclic_time() -> None:
    # 1970-01-05 06:00 UTC is a Monday at 06:00: hour phase 90°, weekday 0.
    t = F.cyclic_time(4 * 86400 + 6 * 3600)[0]
    np.testing.assert_allclose(t, [1.0, 0.0, 0.0, 1.0], atol=1e-6)


def test_windowed_counters_online_equals_offline() -> None:
    rng = np.random.default_rng(0)
    ts = np.sort(rng.integers(0, 10 * 86400, 3000)).astype(np.float64)
    for window, gran in F.WINDOWS.values():
        for now in rng.integers(0, 10 * 86400, 20).astype(float):
            seen = ts[ts < now]  # online: only events that already happened
            buckets: dict[int, float] = {}
            for t in seen:
                buckets[int(F.bucket_of(t, gran))] = buckets.get(int(F.bucket_of(t, gran)), 0) + 1
            online = F.windowed_count(buckets, now, window, gran)
            offline = F.count_in_window(ts, now, window, gran)
            assert online == offline


def test_smoothed_rate_and_decay() -> None:
    assert F.smoothed_rate(0, 0, 0.55, 10) == pytest.approx(0.55)
    assert F.smoothed_rate(10, 10, 0.5, 10) == pytest.approx(0.75)
    np.testing.assert_allclose(F.decay_affinity(np.array([4.0]), 86400, 86400), [2.0])
    np.testing.assert_allclose(F.decay_affinity(np.array([4.0]), -5, 86400), [4.0])


def test_encode_ranker_shapes_and_speed() -> None:
    user = F.UserFeatures("7", 30, "F", "writer", "02139", history=[str(i) for i in range(80)],
                          genre_affinity=np.arange(19.0), n_events=80, rating_sum=300,
                          n_ratings=80, last_event_ts=1e9)  # fmt: skip
    items = [F.ItemFeatures(str(i), ["Drama"], 1990 + i % 9, count_24h=i) for i in range(500)]
    table = F.ItemTable.from_items(items)
    feeds = F.encode_ranker(user, table, 1e9 + 3600)
    schema = F.build_schema(F.DEFAULT_CONFIG, 64)
    for spec in schema.models["ranker"]["inputs"]:
        a = feeds[spec["name"]]
        assert a.dtype == np.dtype(spec["dtype"])
        assert [d for d in spec["shape"] if isinstance(d, int)] == list(a.shape[1:])
    assert feeds["user_id_hash"].shape[0] == 1 and feeds["item_id_hash"].shape[0] == 500
    # Record path and table path agree.
    np.testing.assert_array_equal(
        F.encode_ranker(user, items, 1e9 + 3600)["item_dense"], feeds["item_dense"]
    )
    import time

    t0 = time.perf_counter()
    for _ in range(50):
        F.encode_ranker(user, table, 1e9 + 3600)
    assert (time.perf_counter() - t0) / 50 < 0.005  # well under 1 ms on an idle core


def test_cross_features() -> None:
    aff = F.normalise_affinity(np.array([0.0] * 17 + [1.0, 3.0]))
    g = np.zeros((2, 19), np.float32)
    g[0, 18] = 1
    g[1, [17, 18]] = 1
    np.testing.assert_allclose(cross_columns(aff, g), [[0.75, 0.75], [0.5, 0.75]])


def test_schema_roundtrip_and_mismatch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    schema = F.build_schema(F.DEFAULT_CONFIG, 64)
    schema.save(tmp_path / "feature_schema.json")
    loaded = F.FeatureSchema.load(tmp_path / "feature_schema.json")
    assert loaded.input_names("ranker") == schema.input_names("ranker")
    onnx_type = {"int64": "tensor(int64)", "float32": "tensor(float)"}
    ok = [
        SimpleNamespace(name=i["name"], type=onnx_type[i["dtype"]], shape=i["shape"])
        for i in schema.models["user_tower"]["inputs"]
    ]
    loaded.check_onnx_inputs(ok, "user_tower")
    bad = ok[:-1] + [SimpleNamespace(name="time_cyc", type="tensor(float)", shape=["B", 6])]
    with pytest.raises(
        F.FeatureSchemaError, match=r"time_cyc: shape \['B', 6\], schema says \['B', 4\]"
    ):
        loaded.check_onnx_inputs(bad, "user_tower")
    with pytest.raises(F.FeatureSchemaError, match="missing input 'time_cyc'"):
        loaded.check_onnx_inputs(ok[:-1], "user_tower")
    with pytest.raises(F.FeatureSchemaError, match="not found"):
        F.FeatureSchema.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(F.FeatureSchemaError, match="bad.json is corrupt"):
        F.FeatureSchema.load(tmp_path / "bad.json")


def test_no_torch_or_pandas_in_shared_features() -> None:
    code = ("import sys, shared.features, shared.models.registry; "
            "print([m for m in ('torch', 'pandas') if m in sys.modules])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_year_columns_equal_the_scalar_definition() -> None:
    years = np.array([np.nan, 0.0, -5.0, 1900.0, 1920.0, 1979.5, 1980.0, 1995.0, 2000.0, 2030.0])
    expected = np.array(
        [F.year_features(None if np.isnan(y) else float(y)) for y in years], dtype=np.float32
    )
    from shared.features.encoders import year_columns

    np.testing.assert_array_equal(year_columns(years), expected)
    assert year_columns(np.zeros(0)).shape == (0, 2)
