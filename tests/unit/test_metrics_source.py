"""The rollout controller's metrics, scraped over real HTTP from exporters with known values."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest
from prometheus_client import (
    CollectorRegistry,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

import shared.observability as obs
from services.gateway.rollouts.metrics import DIFF_BUCKETS
from services.rollouts.metrics_source import (
    MetricsUnavailable,
    PrometheusSource,
    ScrapeSource,
    arm_figures,
    controller_series,
    metrics_source,
    models_held,
    shadow_figures,
)
from shared.platform.metrics import LATENCY_BUCKETS
from tests.utils.rollout_series import ROLLOUT, Process

# A histogram with a negative lowest bucket gets no _sum from prometheus_client (why the
# gateway's agreement buckets start at 0.0): the mean is then unknown, never a false 0.
NEGATIVE_BUCKETS = (-0.5, *DIFF_BUCKETS)


class Exporter(Collector):
    """A real ``/metrics`` endpoint on a free port; ``restart()`` starts a fresh process."""

    def __init__(self) -> None:
        self.process = Process()
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self)
        self.address = f"127.0.0.1:{self.server.server_port}"
        self.url = f"http://{self.address}"

    def collect(self) -> Iterable[Metric]:
        return self.process.registry.collect()

    def restart(self) -> Process:
        """The process restarted: every counter starts again from zero."""
        self.process = Process()
        return self.process

    def stop(self) -> None:
        """Shut the endpoint down (its port then refuses connections)."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[str, Exporter]]:
    """Two gateways and two replicas of a ranking service (stopping one takes 0.5 s: shared)."""
    started = {name: Exporter() for name in ("gateway-1", "gateway-2", "ranking-1", "ranking-2")}
    yield started
    for exporter in started.values():
        exporter.stop()


@pytest.fixture
def exporters(endpoints: dict[str, Exporter]) -> dict[str, Exporter]:
    """The endpoints, each serving a freshly started process."""
    for exporter in endpoints.values():
        exporter.restart()
    return endpoints


@pytest.fixture
async def scrape(exporters: dict[str, Exporter]) -> AsyncIterator[ScrapeSource]:
    """A direct scrape of every exporter (target names become instances)."""
    source = ScrapeSource({name: e.url for name, e in exporters.items()}, timeout_s=2.0)
    yield source
    await source.aclose()


def reference_histogram(observations: list[tuple[int, float]]) -> obs.Histogram:
    """What one histogram of exactly these (count, seconds) observations exposes."""
    reg = CollectorRegistry()
    hist = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=reg)
    for n, seconds in observations:
        for _ in range(n):
            hist.observe(seconds)
    return obs.parse(generate_latest(reg).decode()).histogram("h")


async def test_scrape_sums_two_gateways_over_the_step(
    exporters: dict[str, Exporter], scrape: ScrapeSource
) -> None:
    gw1, gw2 = exporters["gateway-1"].process, exporters["gateway-2"].process
    gw1.traffic("canary", 50, 0.9)  # before the step: must not count
    before = await scrape.snapshot()
    gw1.traffic("production", 300, 0.004)
    gw2.traffic("production", 600, 0.008)
    gw2.traffic("production", 100, 0.012, outcome="degraded")
    gw1.traffic("canary", 49, 0.004)
    gw2.traffic("canary", 49, 0.004)
    gw2.traffic("canary", 2, 0.2, outcome="model_error")
    figures = arm_figures(before, await scrape.snapshot(), ROLLOUT)

    canary = figures["canary"]
    assert (canary.requests, canary.ok, canary.model_errors) == (100, 98, 2)
    assert canary.error_rate == pytest.approx(0.02)
    # 99th of 100: the first of the 2 slow ones in (0.1, 0.25], linear inside the bucket.
    assert canary.p99_s == pytest.approx(0.1 + 0.15 * (99 - 98) / 2)
    prod = figures["production"]
    assert (prod.requests, prod.degraded, prod.model_errors) == (1000, 100, 0)
    assert prod.degraded_share == pytest.approx(0.1)
    expected = reference_histogram([(300, 0.004), (600, 0.008), (100, 0.012)])
    assert prod.latency.cumulative == expected.cumulative
    assert prod.p99_s == pytest.approx(expected.quantile(0.99))
    assert prod.p50_s == pytest.approx(expected.quantile(0.5))


async def test_a_gateway_restarted_during_the_step_counts_from_zero(
    exporters: dict[str, Exporter], scrape: ScrapeSource
) -> None:
    """Reset per instance: gateway-2's new counts are its whole increase; gateway-1's grow on."""
    exporters["gateway-1"].process.traffic("canary", 500, 0.004)
    exporters["gateway-2"].process.traffic("canary", 800, 0.004)
    before = await scrape.snapshot()
    exporters["gateway-1"].process.traffic("canary", 10, 0.004)
    exporters["gateway-2"].restart().traffic("canary", 30, 0.03, outcome="model_error")
    canary = arm_figures(before, await scrape.snapshot(), ROLLOUT)["canary"]
    assert (canary.requests, canary.ok, canary.model_errors) == (40, 10, 30)
    assert canary.latency.cumulative == reference_histogram([(10, 0.004), (30, 0.03)]).cumulative


async def test_a_restart_is_seen_even_when_the_new_process_counted_past_the_old(
    exporters: dict[str, Exporter], scrape: ScrapeSource
) -> None:
    """5 -> 8 looks like +3 by value; the new process start time says all 8 are new."""
    exporters["gateway-1"].process.traffic("canary", 5, 0.004)
    before = await scrape.snapshot()
    time.sleep(0.01)  # a later start time
    exporters["gateway-1"].restart().traffic("canary", 8, 0.004, outcome="model_error")
    canary = arm_figures(before, await scrape.snapshot(), ROLLOUT)["canary"]
    assert (canary.requests, canary.ok, canary.model_errors) == (8, 0, 8)
    assert canary.latency.count == 8


async def test_shadow_figures(exporters: dict[str, Exporter], scrape: ScrapeSource) -> None:
    gw1, gw2 = exporters["gateway-1"].process, exporters["gateway-2"].process
    gw1.agreement.labels(ROLLOUT, "final", "rbo").observe(0.1)  # before: must not count
    before = await scrape.snapshot()
    gw1.shadow.labels(ROLLOUT, "compared").inc(90)
    gw2.shadow.labels(ROLLOUT, "error").inc(10)
    gw2.shadow.labels(ROLLOUT, "dropped").inc(100)
    for gw, value in ((gw1, 0.9), (gw2, 0.7)):
        gw.agreement.labels(ROLLOUT, "final", "rbo").observe(value)
        gw.agreement.labels(ROLLOUT, "ranked", "kendall_tau").observe(value - 1.0)
        gw.score_delta.labels(ROLLOUT).observe(value / 10)
        gw.shadow_latency.labels(ROLLOUT).observe(0.02)
    gw2.agreement.labels("another-rollout", "final", "rbo").observe(0.0)
    shadow = shadow_figures(before, await scrape.snapshot(), ROLLOUT)
    assert (shadow.compared, shadow.errors, shadow.dropped) == (90, 10, 100)
    assert shadow.error_share == pytest.approx(0.1)
    assert shadow.dropped_share == pytest.approx(0.5)
    assert shadow.agreement == pytest.approx(
        {("final", "rbo"): 0.8, ("ranked", "kendall_tau"): -0.2}
    )
    assert shadow.score_delta_mean == pytest.approx(0.08)
    assert shadow.p99_s == pytest.approx(0.015 + 0.005 * (2 * 0.99) / 2)


async def test_agreement_mean_is_unknown_when_the_gateway_writes_no_sum(
    exporters: dict[str, Exporter], scrape: ScrapeSource
) -> None:
    gw1 = exporters["gateway-1"].process
    tau = Histogram(
        "cascade_shadow_agreement",
        "a",
        ["rollout", "stage", "measure"],
        buckets=NEGATIVE_BUCKETS,
        registry=CollectorRegistry(),
    )
    gw1.registry.unregister(gw1.agreement)
    gw1.registry.register(tau)
    before = await scrape.snapshot()
    tau.labels(ROLLOUT, "final", "rbo").observe(0.9)
    agreement = shadow_figures(before, await scrape.snapshot(), ROLLOUT).agreement
    assert list(agreement) == [("final", "rbo")]
    assert math.isnan(agreement[("final", "rbo")])


async def test_a_step_without_traffic_has_no_rates(scrape: ScrapeSource) -> None:
    snap = await scrape.snapshot()
    figures = arm_figures(snap, snap, ROLLOUT)
    assert set(figures) == {"production", "canary"}
    assert figures["canary"].requests == 0
    assert math.isnan(figures["canary"].error_rate) and math.isnan(figures["canary"].p99_s)
    shadow = shadow_figures(snap, snap, ROLLOUT)
    assert shadow.agreement == {} and math.isnan(shadow.score_delta_mean)


async def test_models_held_counts_a_version_once_every_replica_holds_it(
    exporters: dict[str, Exporter], scrape: ScrapeSource
) -> None:
    r1, r2 = exporters["ranking-1"].process, exporters["ranking-2"].process
    for replica in (r1, r2):
        replica.hold("ranking", "ranker", "production", "cascade-ranker/4 (@production)")
        replica.hold("ranking", "retrieval", "production", "cascade-two_tower/2 (@production)")
    r1.hold("ranking", "ranker", "canary", "cascade-ranker/5 (@canary)")
    assert models_held(await scrape.snapshot(), "ranker", "canary") == {"ranking": []}
    r2.hold("ranking", "ranker", "canary", "cascade-ranker/5 (@canary)")
    snap = await scrape.snapshot()
    assert models_held(snap, "ranker", "canary") == {"ranking": ["cascade-ranker/5 (@canary)"]}
    assert models_held(snap, "ranker", "production") == {
        "ranking": ["cascade-ranker/4 (@production)"]
    }
    assert models_held(snap, "item_index", "canary") == {}
    r1.hold("ranking", "ranker", "canary", "cascade-ranker/5 (@canary)", held=False)
    assert models_held(await scrape.snapshot(), "ranker", "canary") == {"ranking": []}


async def test_snapshots_hold_only_the_controllers_families_per_instance(
    exporters: dict[str, Exporter], scrape: ScrapeSource
) -> None:
    exporters["gateway-1"].process.traffic("canary", 3, 0.004)
    snap = await scrape.snapshot()
    assert snap.missing == {}
    assert {key for key in snap.series.gauges if key[0] == "process_start_time_seconds"} == {
        ("process_start_time_seconds", frozenset({("instance", name)})) for name in exporters
    }
    assert snap.series.counters == {
        (
            "cascade_rollout_requests_total",
            frozenset(
                {
                    ("instance", "gateway-1"),
                    ("rollout", ROLLOUT),
                    ("arm", "canary"),
                    ("outcome", "ok"),
                }
            ),
        ): 3.0
    }


def _dead_url() -> str:
    """An address nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_extra_labels_are_dropped_and_their_series_summed() -> None:
    """As Prometheus's ``sum by`` over the family's labels: the two sources then agree."""
    name = "cascade_rollout_requests_total"
    text = f"# TYPE {name} counter\n" + "".join(
        f'{name}{{rollout="r",arm="canary",outcome="ok",worker="{w}"}} {n}\n'
        for w, n in (("a", 2), ("b", 3))
    )
    labels = {"instance": "gw", "rollout": "r", "arm": "canary", "outcome": "ok"}
    assert controller_series(obs.parse(text), "gw").counters == {
        (name, frozenset(labels.items())): 5.0
    }


async def test_an_unreachable_target_makes_the_snapshot_unavailable(
    exporters: dict[str, Exporter],
) -> None:
    dead = _dead_url()
    source = ScrapeSource({"gateway-1": exporters["gateway-1"].url, "gateway-3": dead})
    with pytest.raises(MetricsUnavailable, match="gateway-3") as caught:
        await source.snapshot()
    assert caught.value.source == f"gateway-3 ({dead})"
    assert "unreachable" in caught.value.reason and "gateway-1" not in caught.value.source
    await source.aclose()


async def test_a_target_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        source = ScrapeSource({"gateway-9": url}, timeout_s=0.2)
        with pytest.raises(MetricsUnavailable, match=r"gateway-9 .*timeout"):
            await source.snapshot()
        await source.aclose()


async def test_allow_partial_reports_the_missing_target_and_leaves_it_out(
    exporters: dict[str, Exporter],
) -> None:
    """A target missing at the step's start and back now would count its whole history."""
    gw1, gw2 = exporters["gateway-1"], exporters["gateway-2"]
    targets = {"gateway-1": gw1.url, "gateway-2": _dead_url()}
    partial = ScrapeSource(targets, allow_partial=True)
    gw1.process.traffic("canary", 5, 0.004)
    gw2.process.traffic("canary", 1000, 0.004)
    before = await partial.snapshot()
    assert set(before.missing) == {"gateway-2"} and "unreachable" in before.missing["gateway-2"]
    gw1.process.traffic("canary", 7, 0.004)
    whole = ScrapeSource({"gateway-1": gw1.url, "gateway-2": gw2.url})
    after = await whole.snapshot()
    assert arm_figures(before, after, ROLLOUT)["canary"].requests == 7
    everything_dead = ScrapeSource({"gateway-2": _dead_url()}, allow_partial=True)
    with pytest.raises(MetricsUnavailable, match="gateway-2"):
        await everything_dead.snapshot()
    for source in (partial, whole, everything_dead):
        await source.aclose()


async def test_an_unreachable_prometheus_is_unavailable() -> None:
    url = _dead_url()
    source = PrometheusSource(url, timeout_s=0.5)
    with pytest.raises(MetricsUnavailable, match="prometheus") as caught:
        await source.snapshot()
    assert caught.value.source == f"prometheus {url}"
    await source.aclose()


def test_the_factory_prefers_prometheus() -> None:
    targets = {"gateway-1": "http://127.0.0.1:1"}
    assert isinstance(metrics_source("http://127.0.0.1:9090", targets), PrometheusSource)
    assert isinstance(metrics_source(None, targets), ScrapeSource)
    with pytest.raises(ValueError, match="at least one"):
        metrics_source(None, {})
