"""The load test's figures and report: from real exposition text to JSON, table, HTML, PNGs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
from PIL import Image
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram

from loadtests.budget_verdict import Criteria
from loadtests.load_generator import LoadResult
from loadtests.loadtest import Settings, build_report, step_record
from loadtests.loadtest_report import format_table, write_report
from loadtests.prom_histograms import Snapshot, parse
from services.gateway.pipeline import PIPELINE
from services.gateway.runner import Step
from shared.pipeline.budget import LatencyBudget
from shared.platform.metrics import LATENCY_BUCKETS

# The gateway's steps (each has its budget entry), as the pipeline declares them.
STAGES = tuple(s.name for s in PIPELINE if isinstance(s, Step))

# Bounds of the services' latency histograms, in seconds.
BUCKETS = LATENCY_BUCKETS


class FakeService:
    """The metric families a Cascade service exposes, in a registry of its own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reg = CollectorRegistry()
        self.stage = PromHistogram(
            "cascade_stage_duration_seconds",
            "s",
            ["service", "stage"],
            buckets=BUCKETS,
            registry=self.reg,
        )
        self.errors = PromCounter(
            "cascade_stage_errors_total", "e", ["service", "stage", "kind"], registry=self.reg
        )
        self.http = PromHistogram(
            "cascade_http_request_duration_seconds",
            "h",
            ["service", "route", "method", "status"],
            buckets=BUCKETS,
            registry=self.reg,
        )

    def snapshot(self) -> Snapshot:
        return parse(generate_latest(self.reg).decode())


def _step(
    rate: float, ranking_s: float, timeouts: int, gw: FakeService, rank: FakeService
) -> dict[str, object]:
    """One step: 100 requests; ranking takes ``ranking_s`` at the gateway, 3 ms in its service."""
    before = {"gateway": gw.snapshot(), "ranking": rank.snapshot(), "filtering": None}
    for _ in range(100):
        for stage in STAGES:
            gw.stage.labels("gateway", stage).observe(ranking_s if stage == "ranking" else 0.002)
        gw.http.labels("gateway", "/v1/recommendations", "GET", "200").observe(0.02)
        rank.http.labels("ranking", "/v1/rank", "POST", "200").observe(0.003)
    rank.http.labels("ranking", "/metrics", "GET", "200").observe(0.5)  # ops: not the work
    gw.errors.labels("gateway", "ranking", "timeout").inc(timeouts)
    after = {"gateway": gw.snapshot(), "ranking": rank.snapshot(), "filtering": None}
    lat = np.linspace(5.0, 30.0 + rate / 10, 100)
    res = LoadResult(
        rate,
        lat,
        0,
        timeouts,
        100,
        rate,
        degraded_reasons=Counter(
            {"ranking: timeout after 12 ms; fallback: retrieval order": timeouts}
        ),
        send_lag_ms=np.zeros(100),
        wall_s=100 / rate,
        cpu_s=0.05,
    )
    record = step_record(res, list(STAGES) + ["fallback"], before, after)
    record["load_avg_1m"] = {"before": 0.5, "after": 0.6}
    record["stop"] = ""
    return record


def _report() -> dict[str, object]:
    gw, rank = FakeService("gateway"), FakeService("ranking")
    records = [
        _step(25.0, 0.004, 0, gw, rank),
        _step(50.0, 0.008, 0, gw, rank),
        _step(75.0, 0.0125, 20, gw, rank),
    ]
    settings = Settings(
        "http://127.0.0.1:8000", {"gateway": "x"}, [25.0, 50.0, 75.0], 4.0, Path("out")
    )
    return build_report(settings, LatencyBudget(), Criteria(p99_target_ms=45.0), records)


def test_step_figures_come_from_the_histogram_differences() -> None:
    report = _report()
    steps = report["steps"]
    assert isinstance(steps, list)
    last = steps[2]["stages"]["ranking"]
    assert last["calls"] == 100  # the earlier steps' observations are differenced away
    assert last["errors"] == {"timeout": 20.0} and last["error_share"] == 0.2
    assert 10.0 < last["p99_ms"] <= 15.0 and last["p99_bucket_ms"] == [10.0, 15.0]
    service = last["service"]
    assert service["name"] == "ranking" and service["calls"] == 100  # /metrics left out
    assert service["p99_ms"] <= 5.0 and last["hop_p50_ms"] > 5.0
    assert steps[2]["stages"]["filtering"]["service"] is None  # its scrape failed
    assert steps[2]["stages"]["fallback"]["calls"] == 0
    assert steps[2]["gateway_request"]["calls"] == 100
    assert steps[2]["client"]["degraded_by_stage"] == {"ranking": 20}
    assert steps[2]["generator"]["cpu_ms_per_request"] == 0.5


def test_verdict_names_ranking_at_75() -> None:
    verdict = _report()["verdict"]
    assert isinstance(verdict, dict)
    assert verdict["first_broken"] == ["ranking"]
    assert verdict["stages"]["ranking"]["first_broke_rps"] == 75.0
    assert verdict["stages"]["ranking"]["within_up_to_rps"] == 50.0
    assert verdict["stages"]["filtering"]["first_broke_rps"] is None
    assert verdict["knee_rps"] == 50.0  # 20% degraded at 75 req/s


def test_table_shows_every_stage_and_the_verdict() -> None:
    table = format_table(_report())
    for stage in (*STAGES, "fallback"):
        assert stage in table
    assert "broke it at 75 req/s: failed 20.0% of 100 calls (timeout 20)" in table
    assert "[its service's own work there: p99 3.0 ms]" in table  # the hop is what is slow
    assert "knee of the whole path" in table and "50 req/s" in table


def test_report_files(tmp_path: Path) -> None:
    files = write_report(_report(), tmp_path / "loadtest")
    assert {p.name for p in (tmp_path / "loadtest").iterdir()} == {
        "loadtest.json",
        "index.html",
        "stages.png",
        "degraded.png",
    }
    data = orjson.loads(files["json"].read_bytes())
    for key in ("settings", "budget", "criteria", "steps", "verdict", "machine", "stages"):
        assert key in data
    assert data["budget"]["stages"]["ranking"] == 12.0
    assert data["steps"][0]["stages"]["fallback"]["p99_ms"] is None  # NaN written as null
    for png in (files["stages_png"], files["degraded_png"]):
        with Image.open(png) as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] > 300
    page = files["html"].read_text()
    assert 'src="stages.png"' in page and 'src="degraded.png"' in page and "ranking" in page
