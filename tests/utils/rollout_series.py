"""A service process's rollout series as the gateway and ModelSet declare them, with known
values: what the controller's metrics and analysis tests read (over HTTP or parsed)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

import shared.observability as obs
from services.gateway.rollouts.metrics import DIFF_BUCKETS
from services.rollouts.metrics_source import Snapshot, controller_series
from shared.platform.metrics import LATENCY_BUCKETS

SCORE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
ROLLOUT = "r-ranker-5"


class Process:
    """One service process's series, as the gateway and ModelSet declare them."""

    def __init__(self) -> None:
        self.registry = reg = CollectorRegistry()
        self.requests = Counter(
            "cascade_rollout_requests_total", "r", ["rollout", "arm", "outcome"], registry=reg
        )
        self.latency = Histogram(
            "cascade_rollout_request_duration_seconds",
            "l",
            ["rollout", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.shadow = Counter(
            "cascade_shadow_requests_total", "s", ["rollout", "outcome"], registry=reg
        )
        self.shadow_latency = Histogram(
            "cascade_shadow_duration_seconds",
            "s",
            ["rollout"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.agreement = Histogram(
            "cascade_shadow_agreement",
            "a",
            ["rollout", "stage", "measure"],
            buckets=DIFF_BUCKETS,
            registry=reg,
        )
        self.score_delta = Histogram(
            "cascade_shadow_score_delta", "d", ["rollout"], buckets=SCORE_BUCKETS, registry=reg
        )
        self.models = Gauge(
            "cascade_models_held", "m", ["service", "slot", "alias", "model"], registry=reg
        )
        # What prometheus_client's default registry adds to every service's /metrics.
        Gauge("process_start_time_seconds", "s", registry=reg).set(time.time())
        # A family the controller does not read: left out of its snapshots.
        Counter("cascade_stage_errors_total", "e", ["stage"], registry=reg).labels("x").inc()

    def traffic(self, arm: str, n: int, seconds: float, outcome: str = "ok",
                rollout: str = ROLLOUT) -> None:  # fmt: skip
        """``n`` requests of ``arm`` with ``outcome``, each taking ``seconds``."""
        self.requests.labels(rollout, arm, outcome).inc(n)
        for _ in range(n):
            self.latency.labels(rollout, arm).observe(seconds)

    def hold(self, service: str, slot: str, alias: str, model: str, held: bool = True) -> None:
        """Export (or remove) one held model version, as ModelSet does."""
        if held:
            self.models.labels(service, slot, alias, model).set(1)
        else:
            self.models.remove(service, slot, alias, model)

    def snapshot(self, instance: str = "gateway") -> Snapshot:
        """What a scrape of this process gives the controller now."""
        text = generate_latest(self.registry).decode()
        return Snapshot(controller_series(obs.parse(text), instance), "test")
