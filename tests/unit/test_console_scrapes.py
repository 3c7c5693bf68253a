"""The console's ring of scrapes: windowed increases and quantiles from real expositions."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from services.console.latency import latency_report, latency_rows
from services.console.scrapes import Scrape, ScrapeRing, kept
from shared.pipeline.budget import LatencyBudget
from shared.platform.metrics import LATENCY_BUCKETS


class Process:
    """A service's registry: per-step latency, request latency and its start time."""

    def __init__(self, started: float = 100.0) -> None:
        self.registry = CollectorRegistry()
        self.stage = Histogram("cascade_stage_duration_seconds", "", ["service", "stage"],
                               buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.request = Histogram("cascade_http_request_duration_seconds", "",
                                 ["service", "route", "method", "status"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        start = Gauge("process_start_time_seconds", "", registry=self.registry)
        start.set(started)

    def serve(self, n: int, ranking_s: float) -> None:
        """``n`` requests whose ranking step took ``ranking_s``."""
        for _ in range(n):
            self.stage.labels("gateway", "ranking").observe(ranking_s)
            self.request.labels("gateway", "/v1/recommendations", "GET", "200").observe(0.03)

    def scrape(self, ts: float) -> Scrape:
        return Scrape(ts, {"gateway": kept(generate_latest(self.registry).decode())})


def test_the_window_sees_only_what_happened_inside_it() -> None:
    gw, ring = Process(), ScrapeRing(keep_s=900)
    gw.serve(100, 0.4)  # slow, long ago
    ring.add(gw.scrape(1000.0))
    gw.serve(50, 0.004)
    ring.add(gw.scrape(1300.0))
    gw.serve(50, 0.004)
    ring.add(gw.scrape(1400.0))
    window = ring.window(300)  # from the newest scrape at least 300 s old: 1000
    assert window is not None and window.span_s == 400
    rows = {r["name"]: r for r in latency_rows(window.series, LatencyBudget())}
    assert rows["ranking"]["count"] == 100  # the 100 slow ones are before the window
    assert rows["ranking"]["p99_ms"] <= 5.0 and not rows["ranking"]["over_budget"]
    assert rows["total"]["count"] == 100
    whole = {r["name"]: r for r in latency_rows(ring.window(10_000).series, LatencyBudget())}
    assert whole["ranking"]["count"] == 100  # from the oldest scrape kept: still a difference
    recent = {r["name"]: r for r in latency_rows(ring.window(100).series, LatencyBudget())}
    assert recent["ranking"]["count"] == 50


def test_a_restarted_process_counts_from_its_start() -> None:
    ring = ScrapeRing(keep_s=900)
    old = Process(started=100.0)
    old.serve(500, 0.2)
    ring.add(old.scrape(1000.0))
    new = Process(started=1100.0)  # restarted inside the window, counted 20 since
    new.serve(20, 0.002)
    ring.add(new.scrape(1200.0))
    rows = {r["name"]: r for r in latency_rows(ring.window(300).series, LatencyBudget())}
    assert rows["ranking"]["count"] == 20 and rows["ranking"]["p99_ms"] < 5


def test_over_budget_is_judged_on_p99() -> None:
    gw, ring = Process(), ScrapeRing(keep_s=900)
    ring.add(gw.scrape(0.0))
    gw.serve(99, 0.004)
    gw.serve(5, 0.09)  # 5% of requests past the 12 ms ranking budget
    ring.add(gw.scrape(60.0))
    report = latency_report(ring.window(300), LatencyBudget(), "console scrapes")
    ranking = next(r for r in report["rows"] if r["name"] == "ranking")
    assert ranking["p50_ms"] < 5 and ranking["p99_ms"] > 12 and ranking["over_budget"]
    assert report["span_s"] == 60.0 and report["note"] == ""


def test_one_scrape_is_not_a_window_yet() -> None:
    ring = ScrapeRing(keep_s=900)
    assert latency_report(ring.window(60), LatencyBudget(), "s")["span_s"] == 0.0
    ring.add(Process().scrape(5.0))
    report = latency_report(ring.window(60), LatencyBudget(), "s")
    assert report["span_s"] == 0.0 and "collecting" in report["note"]
    assert all(r["count"] == 0 and r["p99_ms"] is None for r in report["rows"])


@pytest.mark.parametrize("n", [3, 50])
def test_the_ring_keeps_its_window_and_one_scrape_before(n: int) -> None:
    ring = ScrapeRing(keep_s=60)
    for i in range(n):
        ring.add(Scrape(i * 10.0, {}))
    assert len(ring) == min(n, 7)  # 60 s at one scrape per 10 s: 7 scrapes span it
    latest = ring.latest()
    assert latest is not None and latest.ts == (n - 1) * 10.0
