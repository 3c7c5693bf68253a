"""Per-arm list figures: coverage, concentration, genre diversity and latency quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.rollouts.experiments.analysis import compare_lists
from services.rollouts.exposure_join import ExposureJoin, ServedExposure
from services.rollouts.list_stats import ListStats, bucket_of, bucket_upper_ms, gini
from shared.features.genre_mask import genre_mask, intra_list_genre_diversity


def test_gini_by_hand() -> None:
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    # one item of four has everything: (2*4 - 4 - 1) * 1 / (4 * 1) = 0.75
    assert gini(np.array([0, 0, 0, 1])) == pytest.approx(0.75)
    assert gini(np.array([1, 3])) == pytest.approx(0.25)  # (-1*1 + 1*3) / (2*4)
    assert math.isnan(gini(np.array([])))


def test_intra_list_genre_diversity_by_hand() -> None:
    drama, comedy = genre_mask(["Drama"]), genre_mask(["Comedy"])
    both = genre_mask(["Drama", "Comedy"])
    assert intra_list_genre_diversity(np.array([drama, drama])) == 0.0
    assert intra_list_genre_diversity(np.array([drama, comedy])) == 1.0
    # pairs: (drama, comedy) 1, (drama, both) 1/2, (comedy, both) 1/2 -> mean 2/3
    assert intra_list_genre_diversity(np.array([drama, comedy, both])) == pytest.approx(2 / 3)
    assert math.isnan(intra_list_genre_diversity(np.array([drama])))


def test_latency_quantiles_are_exact_to_a_bucket() -> None:
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(math.log(20), 0.5, 20_000)
    stats = ListStats()
    for ms in latencies:
        stats.add("a", [], None, float(ms))
    f = stats.figures("a")
    for key, q in (("latency_p50_ms", 50), ("latency_p99_ms", 99)):
        true = float(np.percentile(latencies, q))
        assert true <= f[key] <= true * 1.02 * 1.01, (key, f[key], true)
    assert bucket_upper_ms(bucket_of(37.0)) >= 37.0 > bucket_upper_ms(bucket_of(37.0) - 1)


def test_arms_are_told_apart_in_the_join_and_compared() -> None:
    join = ExposureJoin("x", since_ts=0.0)
    popular = [f"i{n}" for n in range(10)]
    for n in range(200):
        join.add_served(ServedExposure(f"a{n}", f"u{n}", 1.0, {"x": "control"},
                                       item_ids=popular, genre_diversity=0.2,
                                       latency_ms=10.0), at=1.0)  # fmt: skip
        wide = [f"i{(n * 10 + j) % 500}" for j in range(10)]
        join.add_served(ServedExposure(f"b{n}", f"v{n}", 1.0, {"x": "mmr"}, item_ids=wide,
                                       genre_diversity=0.5 + 0.1 * (n % 2),
                                       latency_ms=20.0), at=1.0)  # fmt: skip
    c, t = join.list_figures("control"), join.list_figures("mmr")
    assert c["distinct_items"] == 10 and c["exposure_gini"] == pytest.approx(0.0)
    assert t["distinct_items"] == 500 and c["lists"] == t["lists"] == 200
    assert c["diversity"] == pytest.approx(0.2) and t["diversity"] == pytest.approx(0.55)
    cmp = compare_lists(c, t)
    assert cmp["distinct_items_ratio"] == pytest.approx(50.0)
    assert cmp["latency_p99_ms_ratio"] == pytest.approx(2.0, rel=0.03)
    d = cmp["diversity_difference"]
    assert d["ci_low"] < 0.35 < d["ci_high"] and d["ci_low"] > 0.3
    assert join.list_figures("nobody")["latency_p99_ms"] is None
