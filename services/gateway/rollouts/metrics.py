"""Prometheus series of the gateway's rollout work: traffic and outcomes per arm, shadow diffs.

The controller's guardrails read these (through Prometheus, or scraped from the gateways):
the canary arm's error and degraded shares and its p99 against production's, and the shadow's
agreement with production. Labels stay bounded: one active rollout per model slot, two arms,
a handful of stages and measures; a finished rollout's series are removed.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.platform.metrics import LATENCY_BUCKETS

ROLLOUT_REQUESTS = Counter(
    "cascade_rollout_requests_total",
    "Requests of a rollout by arm and outcome: model_error (a step of the rollout's model "
    "slots failed; a canary's request is then answered by production), degraded (something "
    "else degraded the answer), ok.",
    ["rollout", "arm", "outcome"],
)
ROLLOUT_LATENCY = Histogram(
    "cascade_rollout_request_duration_seconds",
    "Gateway time of a rollout's requests by arm (a canary error without production's re-run).",
    ["rollout", "arm"],
    buckets=LATENCY_BUCKETS,
)
SHADOW_RUNS = Counter(
    "cascade_shadow_requests_total",
    "Shadow runs by outcome (compared, error: the shadow degraded, dropped: too busy).",
    ["rollout", "outcome"],
)
SHADOW_LATENCY = Histogram(
    "cascade_shadow_duration_seconds",
    "Time of a shadow run (off the latency path).",
    ["rollout"],
    buckets=LATENCY_BUCKETS,
)
# Agreement measures are in [0, 1] (Kendall tau in [-1, 1]): fine buckets near full agreement.
# No negative bound: prometheus_client writes no _sum for such a histogram (and the mean is
# what the controller reads); a negative tau lands in the first bucket and still sums.
DIFF_BUCKETS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
SHADOW_DIFF = Histogram(
    "cascade_shadow_agreement",
    "Shadow against production per stage and measure (overlap_at_k, jaccard_at_k, recall, "
    "kendall_tau, rbo); the mean is sum / count.",
    ["rollout", "stage", "measure"],
    buckets=DIFF_BUCKETS,
)
SHADOW_SCORE_DELTA = Histogram(
    "cascade_shadow_score_delta",
    "Mean absolute score difference on the items both rankers scored.",
    ["rollout"],
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
ASSIGNMENTS_VERSION = Gauge(
    "cascade_rollout_assignments_version",
    "Version of the controller's assignments this gateway applies (0: none yet).",
)
ASSIGNMENTS_AGE = Gauge(
    "cascade_rollout_assignments_age_seconds",
    "Seconds since this gateway last heard from the rollout controller.",
)
ARM_SHARE = Gauge(
    "cascade_rollout_share", "Share of traffic the gateway gives each rollout's arm.",
    ["rollout", "arm"],
)  # fmt: skip


def forget(rollout_id: str) -> None:
    """Remove a finished rollout's series (bounded label sets, and a clean dashboard)."""
    for metric, label_sets in (
        (ROLLOUT_REQUESTS, [(rollout_id, a, o) for a in ("production", "canary")
                            for o in ("ok", "degraded", "model_error")]),
        (ROLLOUT_LATENCY, [(rollout_id, a) for a in ("production", "canary")]),
        (ARM_SHARE, [(rollout_id, a) for a in ("canary", "shadow")]),
        (SHADOW_RUNS, [(rollout_id, o) for o in ("compared", "error", "dropped")]),
        (SHADOW_LATENCY, [(rollout_id,)]),
        (SHADOW_SCORE_DELTA, [(rollout_id,)]),
    ):  # fmt: skip
        for labels in label_sets:
            try:
                metric.remove(*labels)
            except KeyError:
                pass  # never observed: nothing to remove
    for stage in ("candidates", "ranked", "final"):
        for measure in ("overlap_at_k", "jaccard_at_k", "recall", "kendall_tau", "rbo"):
            try:
                SHADOW_DIFF.remove(rollout_id, stage, measure)
            except KeyError:
                pass
