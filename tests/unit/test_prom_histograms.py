"""shared.observability: histogram differencing and PromQL's histogram_quantile, on Prometheus's
own test cases, and summing the series of several instances."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from shared.observability import Snapshot, combine, histogram_quantile, parse
from shared.platform.metrics import LATENCY_BUCKETS

# prometheus/prometheus promql/testdata/histograms.test: two histograms, one whose lowest bucket
# is negative. Cumulative counts per bucket (the ratios of its 0+5x10... series).
POSITIVE = ((0.1, 0.2, 1.0, math.inf), (5, 7, 11, 12))
NEGATIVE = ((-0.2, -0.1, 0.3, math.inf), (1, 2, 2, 3))

# Bounds of the services' latency histograms, in seconds.
BUCKETS = LATENCY_BUCKETS


@pytest.mark.parametrize(
    ("q", "positive", "negative"),
    [
        (-0.1, -math.inf, -math.inf),  # quantile too low
        (1.01, math.inf, math.inf),  # quantile too high
        (0.0, 0.0, -0.2),  # in the lowest bucket (which starts at 0 unless its bound <= 0)
        (1.0, 1.0, 0.3),  # in the +Inf bucket: the highest finite bound
        (0.2, 0.048, -0.2),
        (0.5, 0.15, -0.15),
        (0.8, 0.72, 0.3),
    ],
)
def test_quantile_matches_promql(q: float, positive: float, negative: float) -> None:
    assert histogram_quantile(q, *POSITIVE) == pytest.approx(positive)
    assert histogram_quantile(q, *NEGATIVE) == pytest.approx(negative)


def test_no_observations_or_no_inf_bucket_is_nan() -> None:
    assert math.isnan(histogram_quantile(0.5, (0.1, math.inf), (0, 0)))
    assert math.isnan(histogram_quantile(0.5, (0.1, 0.2), (1, 2)))
    assert math.isnan(histogram_quantile(0.5, (math.inf,), (3,)))
    assert math.isnan(histogram_quantile(math.nan, *POSITIVE))


def _exposition(series: dict[tuple[str, str], tuple[int, int, int]]) -> str:
    """request_duration_seconds buckets (0.1, 0.2, +Inf) per (job, instance)."""
    lines = ["# TYPE request_duration_seconds histogram"]
    for (job, ins), counts in series.items():
        for le, c in zip(("0.1", "0.2", "+Inf"), counts, strict=True):
            lines.append(
                f'request_duration_seconds_bucket{{job="{job}",instance="{ins}",le="{le}"}} {c}'
            )
        lines.append(f'request_duration_seconds_count{{job="{job}",instance="{ins}"}} {counts[-1]}')
        lines.append(f'request_duration_seconds_sum{{job="{job}",instance="{ins}"}} 1.0')
    return "\n".join(lines) + "\n"


# histograms.test "a more realistic histogram per job and instance": one step of each series.
REALISTIC = {
    ("job1", "ins1"): (1, 3, 4),
    ("job1", "ins2"): (2, 5, 6),
    ("job2", "ins1"): (3, 4, 6),
    ("job2", "ins2"): (4, 7, 9),
}


def test_sum_over_series_then_quantile_matches_promql_aggregation() -> None:
    snap = parse(_exposition(REALISTIC))
    everything = snap.histogram("request_duration_seconds")
    assert everything.quantile(0.3) == pytest.approx(0.075)
    assert everything.quantile(0.5) == pytest.approx(0.1277777777777778)
    job2 = snap.histogram("request_duration_seconds", lambda la: la["job"] == "job2")
    assert job2.quantile(0.3) == pytest.approx(0.0642857142857143)
    assert job2.quantile(0.5) == pytest.approx(0.1125)


def test_difference_of_two_scrapes_is_the_increase() -> None:
    """Ten scrapes' worth of growth (0+Nx10) differenced gives the same quantiles as one step."""
    before = parse(_exposition({k: tuple(5 * c for c in v) for k, v in REALISTIC.items()}))
    after = parse(_exposition({k: tuple(15 * c for c in v) for k, v in REALISTIC.items()}))
    delta = after.since(before).histogram("request_duration_seconds")
    assert delta.count == 10 * 25
    assert delta.quantile(0.5) == pytest.approx(0.1277777777777778)
    assert delta.sum == 0.0  # the sums did not move


def test_a_counter_reset_counts_from_zero() -> None:
    """A service restarted between scrapes: its new counts are the whole increase."""
    before = parse(_exposition({("j", "i"): (50, 70, 80)}))
    after = parse(_exposition({("j", "i"): (1, 3, 4)}))
    assert after.since(before).histogram("request_duration_seconds").cumulative == (1, 3, 4)


def test_a_series_new_since_the_first_scrape_counts_whole() -> None:
    before = parse(_exposition({("j", "i"): (1, 1, 1)}))
    after = parse(_exposition({("j", "i"): (1, 1, 1), ("j", "new"): (2, 2, 2)}))
    assert after.since(before).histogram("request_duration_seconds").count == 2


def _registry() -> tuple[CollectorRegistry, Histogram, Counter]:
    reg = CollectorRegistry()
    labels = ["service", "stage"]
    hist = Histogram("stage_seconds", "t", labels, buckets=BUCKETS, registry=reg)
    errors = Counter("stage_errors", "t", ["service", "stage", "kind"], registry=reg)
    return reg, hist, errors


def test_prometheus_client_exposition_round_trip() -> None:
    """What the services' prometheus_client writes: 99 fast observations and one slow one."""
    reg, hist, errors = _registry()
    hist.labels("gateway", "ranking").observe(0.5)  # before the step: must not count
    before = parse(generate_latest(reg).decode())
    for _ in range(99):
        hist.labels("gateway", "ranking").observe(0.004)
    hist.labels("gateway", "ranking").observe(0.2)
    hist.labels("gateway", "filtering").observe(0.001)
    errors.labels("gateway", "ranking", "timeout").inc(3)
    errors.labels("gateway", "ranking", "status").inc()
    errors.labels("gateway", "filtering", "timeout").inc()
    delta = parse(generate_latest(reg).decode()).since(before)
    ranking = delta.histogram("stage_seconds", lambda la: la["stage"] == "ranking")
    assert ranking.count == 100
    # 50th of 100 in the (3 ms, 5 ms] bucket, which holds 99: linear inside it.
    assert ranking.quantile(0.5) == pytest.approx(0.003 + 0.002 * 50 / 99)
    assert ranking.quantile(0.99) == pytest.approx(0.005)  # the 99th is the last fast one
    assert ranking.bucket_of(ranking.quantile(0.99)) == (0.003, 0.005)
    assert ranking.sum == pytest.approx(99 * 0.004 + 0.2)
    kinds = delta.counter_by("stage_errors_total", "kind", lambda la: la["stage"] == "ranking")
    assert kinds == {"timeout": 3.0, "status": 1.0}


def test_gauges_are_kept_and_created_samples_dropped() -> None:
    text = (
        "# TYPE up gauge\nup 1\n"
        "# TYPE c_total counter\nc_total 2\n# TYPE c_created gauge\nc_created 1.7e9\n"
    )
    snap = parse(text)
    assert snap.counters == {("c_total", frozenset()): 2.0}
    assert snap.gauges == {("up", frozenset()): 1.0}
    assert snap.histograms == {}


def test_gauges_are_levels_not_differenced() -> None:
    before = parse('# TYPE held gauge\nheld{m="a"} 1\n')
    after = parse('# TYPE held gauge\nheld{m="b"} 1\n')
    assert after.since(before).gauges == {("held", frozenset({("m", "b")})): 1.0}


def test_combine_sums_instances_like_promql_sum() -> None:
    """Two instances summed: the same quantiles as PromQL's sum over both series."""
    one = parse(_exposition({("job1", "ins1"): REALISTIC[("job1", "ins1")]}))
    two = parse(_exposition({("job1", "ins1"): REALISTIC[("job1", "ins2")]}))
    both = combine([one, two])
    assert both.histogram("request_duration_seconds").cumulative == (3, 8, 10)
    summed = parse(_exposition({k: v for k, v in REALISTIC.items() if k[0] == "job1"}))
    assert both.histogram("request_duration_seconds") == summed.histogram(
        "request_duration_seconds"
    )


def test_combine_refuses_histograms_with_different_buckets() -> None:
    one = parse('# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\n')
    two = parse('# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="+Inf"} 1\n')
    with pytest.raises(ValueError, match="bucket bounds differ"):
        combine([one, two])


def test_labelled_and_selected_series() -> None:
    snap = parse(_exposition(REALISTIC) + '# TYPE c_total counter\nc_total{a="x"} 2\n')
    tagged = snap.select({"c_total"}).with_labels({"instance": "gw-1", "a": "y"})
    assert tagged.histograms == {}
    assert tagged.counters == {("c_total", frozenset({("instance", "gw-1"), ("a", "y")})): 2.0}
    assert snap.counters_by("c_total", ["a", "b"]) == {("x", ""): 2.0}
    by_job = snap.histogram_by("request_duration_seconds", ["job"])
    assert by_job[("job2",)].quantile(0.5) == pytest.approx(0.1125)
    assert by_job[("job1",)].mean == pytest.approx(2.0 / 10)


def test_empty_selection_has_no_quantile() -> None:
    empty = Snapshot({}, {}).histogram("nothing")
    assert empty.count == 0
    assert math.isnan(empty.quantile(0.99))


def test_a_histogram_without_sum_has_no_mean() -> None:
    """prometheus_client writes no _sum when the lowest bucket is negative: unknown, not 0."""
    reg = CollectorRegistry()
    tau = Histogram("tau", "t", buckets=(-0.5, 0.0, 1.0), registry=reg)
    tau.observe(0.9)
    hist = parse(generate_latest(reg).decode()).histogram("tau")
    assert hist.count == 1
    assert math.isnan(hist.sum) and math.isnan(hist.mean)
