"""The monitors' Prometheus gauges, computed from the live monitors at scrape time."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.ranking.monitors.monitor import RankerMonitor

_MONITORS: weakref.WeakSet[RankerMonitor] = weakref.WeakSet()


class MonitorCollector(Collector):
    """``cascade_feature_psi``, ``cascade_score_psi``, window sizes and reference presence."""

    def collect(self) -> Iterator[Metric]:
        """One family each, a series per (service, variant[, feature | head])."""
        feature = GaugeMetricFamily(
            "cascade_feature_psi", "PSI of a ranker input over the window vs its training "
            "reference.", labels=["service", "variant", "feature"],
        )  # fmt: skip
        score = GaugeMetricFamily(
            "cascade_score_psi", "PSI of a ranker head's scores over the window vs its "
            "training reference.", labels=["service", "variant", "head"],
        )  # fmt: skip
        window = GaugeMetricFamily(
            "cascade_monitor_window_requests", "Sampled requests in the drift window.",
            labels=["service", "variant"],
        )  # fmt: skip
        available = GaugeMetricFamily(
            "cascade_monitor_reference_available",
            "1 when the variant's ranker ships a drift reference.", labels=["service", "variant"],
        )  # fmt: skip
        for monitor in list(_MONITORS):
            for v in monitor.report():
                key = [monitor.service, v["variant"]]
                window.add_metric(key, v["window_requests"])
                available.add_metric(key, 1.0 if v["reference"] else 0.0)
                for f in v["features"]:
                    if f["psi"] is not None:
                        feature.add_metric([*key, f["name"]], f["psi"])
                for f in v["scores"]:
                    if f["psi"] is not None:
                        score.add_metric([*key, f["name"]], f["psi"])
        yield from (feature, score, window, available)


REGISTRY.register(MonitorCollector())


def export(monitor: RankerMonitor) -> RankerMonitor:
    """Export ``monitor``'s figures from this process's ``/metrics`` (while it lives)."""
    _MONITORS.add(monitor)
    return monitor
