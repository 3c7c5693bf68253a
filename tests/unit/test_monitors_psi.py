"""PSI and its bins against known cases: hand-computed values, the identity with scipy's
KL divergences, quantile edges with point masses, the vectorised binner agreeing with
``searchsorted``, and the thresholds' false-alarm and detection rates over many seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy

from services.ranking.monitors.binner import Binner
from shared.monitors.psi import ALERT, WARN, bin_counts, bin_edges, fractions, psi, status
from shared.monitors.reference import Binned


def test_psi_of_identical_fractions_is_zero() -> None:
    f = np.array([0.1, 0.2, 0.3, 0.4])
    assert psi(f, f) == 0.0


def test_psi_hand_computed() -> None:
    """(0.9-0.5)·ln(0.9/0.5) + (0.1-0.5)·ln(0.1/0.5) = 0.4·ln 1.8 + 0.4·ln 5."""
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5))


@pytest.mark.parametrize("seed", range(20))
def test_psi_is_the_symmetric_kl_divergence(seed: int) -> None:
    """PSI = KL(a||e) + KL(e||a) (scipy's entropy), and symmetric."""
    rng = np.random.default_rng(seed)
    e, a = rng.dirichlet(np.ones(10)), rng.dirichlet(np.ones(10))
    assert psi(e, a) == pytest.approx(entropy(a, e) + entropy(e, a))
    assert psi(e, a) == pytest.approx(psi(a, e))


def test_an_empty_bin_counts_as_rare_not_infinite() -> None:
    got = psi([0.5, 0.5, 0.0], [0.5, 0.45, 0.05])
    assert math.isfinite(got) and got > ALERT  # 5% where training had nothing is a shift


def test_edges_are_deciles_and_fractions_about_a_tenth() -> None:
    x = np.random.default_rng(0).normal(size=10_000)
    edges = bin_edges(x)
    assert len(edges) == 9
    assert np.allclose(fractions(bin_counts(edges, x)), 0.1, atol=0.002)


def test_a_point_mass_is_one_bin_and_every_bin_holds_reference_values() -> None:
    """70% zeros then a spread: the zeros share one bin (no repeated edges, no empty bin)."""
    rng = np.random.default_rng(1)
    x = np.concatenate([np.zeros(7000), rng.exponential(size=3000)])
    edges = bin_edges(x)
    assert edges[0] == 0.0 and np.all(np.diff(edges) > 0)
    frac = fractions(bin_counts(edges, x))
    assert frac[0] == pytest.approx(0.7)
    assert np.all(frac[:-1] > 0)


def test_a_constant_reference_still_sees_values_above_it() -> None:
    ref = Binned.of(np.zeros(100))
    assert ref.edges.tolist() == [0.0] and ref.fractions.tolist() == [1.0, 0.0]
    served = fractions(bin_counts(ref.edges, np.array([0.0] * 80 + [2.0] * 20)))
    assert psi(ref.fractions, served) > ALERT


@pytest.mark.parametrize("seed", range(30))
def test_binner_agrees_with_searchsorted_per_column(seed: int) -> None:
    """Mixed scales, point masses, values equal to edges, far outside the range, NaN (bin 0)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 12))
    ref = rng.normal(size=(400, k)) * rng.choice([1e-3, 1.0, 1e4], size=k)
    ref[:, 0] = np.round(ref[:, 0])
    binned = [Binned.of(ref[:, j]) for j in range(k)]
    values = np.concatenate([ref[rng.integers(0, 400, 50)], rng.normal(size=(50, k)) * 1e6])
    values[0, 0] = np.nan
    counts = Binner(binned).split(Binner(binned).counts(values))
    for j, b in enumerate(binned):
        expected = bin_counts(b.edges, np.nan_to_num(values[:, j], nan=-np.inf))
        assert counts[j].tolist() == expected.tolist()


def test_status_thresholds() -> None:
    assert [status(v) for v in (None, 0.05, WARN, 0.2, ALERT, 3.0)] == [
        "insufficient", "ok", "warn", "warn", "alert", "alert",
    ]  # fmt: skip


def _psi_of(seed: int, shift: float, n_served: int) -> float:
    rng = np.random.default_rng(seed)
    ref = Binned.of(rng.normal(size=5000))
    served = rng.normal(size=n_served) + shift
    return psi(ref.fractions, fractions(bin_counts(ref.edges, served)))


def test_no_drift_never_alerts_and_rarely_warns_at_the_minimum_sample() -> None:
    """Same distribution, 200 served values (the default minimum window), 500 seeds: PSI's
    noise is about chi2(9)/n, so warn (0.1) fires a few % of the time, alert (0.25) never."""
    got = np.array([_psi_of(s, 0.0, 200) for s in range(500)])
    assert (got >= ALERT).mean() == 0.0
    assert (got >= WARN).mean() < 0.08


def test_a_one_sd_shift_always_alerts() -> None:
    """A mean shift of one standard deviation (PSI about 1 in theory), 500 seeds."""
    got = np.array([_psi_of(s, 1.0, 200) for s in range(500)])
    assert (got >= ALERT).mean() == 1.0


@pytest.mark.parametrize("seed", range(10))
def test_flat_layout_counts_as_searchsorted_does(seed: int) -> None:
    """A plan's flat layout (two user values once, then 7 rows of three quantities)."""
    rng = np.random.default_rng(seed)
    binned = [Binned.of(rng.normal(size=300)) for _ in range(5)]
    binner = Binner(binned)
    user, rows = rng.normal(size=2), rng.normal(size=(7, 3)) * 2
    plan = binner.plan(np.concatenate([[0, 1], np.tile([2, 3, 4], 7)]))
    got = binner.split(binner.counts(np.concatenate([user, rows.ravel()]), plan))
    values = [user[:1], user[1:], rows[:, 0], rows[:, 1], rows[:, 2]]
    for b, counts, x in zip(binned, got, values, strict=True):
        assert counts.tolist() == bin_counts(b.edges, x).tolist()
