"""PrometheusSource against a real Prometheus scraping real exporters: the same figures as a
direct scrape, a target it failed to scrape reported missing, and a stopped Prometheus
unavailable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import infra
from deploy.local.processes import ProcessSpec, free_port, running
from services.rollouts.metrics_source import (
    MetricsUnavailable,
    PrometheusSource,
    ScrapeSource,
    Snapshot,
    arm_figures,
    models_held,
    shadow_figures,
)
from tests.unit.test_metrics_source import ROLLOUT, Exporter

pytestmark = pytest.mark.integration

# One scrape a second, so the test waits a second or two for Prometheus to see a change.
CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: gateway
    static_configs:
      - targets: [{gateways}]
  - job_name: ranking
    static_configs:
      - targets: [{ranking}]
"""


@pytest.fixture
def exporters() -> Iterator[dict[str, Exporter]]:
    """Two gateways and one ranking service, each on its own port."""
    started = {name: Exporter() for name in ("gateway-a", "gateway-b", "ranking")}
    yield started
    for exporter in started.values():
        exporter.stop()


def _prometheus_spec(tmp_path: Path, exporters: dict[str, Exporter]) -> ProcessSpec:
    gateways = ", ".join(f"'{exporters[n].address}'" for n in ("gateway-a", "gateway-b"))
    config = tmp_path / "prometheus.yml"
    config.write_text(CONFIG.format(gateways=gateways, ranking=f"'{exporters['ranking'].address}'"))
    spec = infra.prometheus_spec(free_port(), config, tmp_path / "tsdb")
    assert spec is not None, "prometheus is not installed: run scripts/bootstrap.sh"
    return spec


async def caught_up(prom: PrometheusSource, direct: Snapshot, timeout_s: float = 10.0) -> Snapshot:
    """Prometheus's snapshot once it has scraped what ``direct`` read."""
    deadline = time.monotonic() + timeout_s
    while True:
        snap = await prom.snapshot()
        if snap.series == direct.series:
            return snap
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus has {snap.series}\nthe exporters {direct.series}")
        await asyncio.sleep(0.2)


def _traffic(exporters: dict[str, Exporter], scale: int) -> None:
    gw_a, gw_b = exporters["gateway-a"].process, exporters["gateway-b"].process
    gw_a.traffic("production", 90 * scale, 0.004)
    gw_b.traffic("production", 10 * scale, 0.03, outcome="degraded")
    gw_a.traffic("canary", 9 * scale, 0.006)
    gw_b.traffic("canary", scale, 0.3, outcome="model_error")
    gw_a.shadow.labels(ROLLOUT, "compared").inc(8 * scale)
    gw_b.shadow.labels(ROLLOUT, "error").inc(scale)
    for value in (0.9, 0.95):
        gw_a.agreement.labels(ROLLOUT, "final", "rbo").observe(value)
        gw_a.agreement.labels(ROLLOUT, "ranked", "kendall_tau").observe(value - 1.0)
        gw_a.score_delta.labels(ROLLOUT).observe(value / 10)
        gw_a.shadow_latency.labels(ROLLOUT).observe(value / 10)


async def test_prometheus_gives_the_figures_of_a_direct_scrape(
    tmp_path: Path, exporters: dict[str, Exporter]
) -> None:
    _traffic(exporters, 3)  # before the step
    ranking = exporters["ranking"].process
    ranking.hold("ranking", "ranker", "production", "cascade-ranker/4 (@production)")
    # Target names as Prometheus's instance labels: the two snapshots are then equal.
    direct = ScrapeSource({e.address: e.url for e in exporters.values()})
    with running(_prometheus_spec(tmp_path, exporters), tmp_path / "logs") as proc:
        prom = PrometheusSource(proc.spec.url, timeout_s=2.0)
        before_direct = await direct.snapshot()
        before = await caught_up(prom, before_direct)
        assert before.missing == {} and before.source == f"prometheus {proc.spec.url}"

        _traffic(exporters, 1)
        # Restarted: its counters start again from zero, and count past the old ones (4 > 3).
        exporters["gateway-b"].restart()
        exporters["gateway-b"].process.traffic("canary", 4, 0.3, outcome="model_error")
        ranking.hold("ranking", "ranker", "canary", "cascade-ranker/5 (@canary)")
        after_direct = await direct.snapshot()
        after = await caught_up(prom, after_direct)

        figures = arm_figures(before, after, ROLLOUT)
        assert figures == arm_figures(before_direct, after_direct, ROLLOUT)
        assert (figures["canary"].requests, figures["canary"].model_errors) == (13, 4)
        assert figures["production"].requests == 90  # gateway-b's production went with it
        assert shadow_figures(before, after, ROLLOUT) == shadow_figures(
            before_direct, after_direct, ROLLOUT
        )
        assert models_held(after, "ranker", "canary") == {"ranking": ["cascade-ranker/5 (@canary)"]}

        exporters["gateway-b"].stop()
        down = exporters["gateway-b"].address
        deadline = time.monotonic() + 10.0
        while down not in (snap := await prom.snapshot()).missing:
            assert time.monotonic() < deadline, "Prometheus never reported gateway-b down"
            await asyncio.sleep(0.2)
        assert "failed to scrape" in snap.missing[down]
        with pytest.raises(MetricsUnavailable, match=down):
            await direct.snapshot()

    with pytest.raises(MetricsUnavailable, match="prometheus") as caught:
        await prom.snapshot()
    assert "unreachable" in caught.value.reason
    await prom.aclose()
    await direct.aclose()
