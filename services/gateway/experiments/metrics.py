"""Prometheus series of the gateway's experiment work: requests per arm, skips, team credit.

Labels stay bounded: experiments are few and declared, arms a handful each; the clicks that
decide an experiment come from the event stream (the controller's exposure join), not from here.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.platform.metrics import LATENCY_BUCKETS

EXPERIMENT_REQUESTS = Counter(
    "cascade_experiment_requests_total",
    "Requests per experiment arm (interleaved: both rankers' lists drafted into one), by "
    "outcome (degraded or ok).",
    ["experiment", "arm", "outcome"],
)
EXPERIMENT_LATENCY = Histogram(
    "cascade_experiment_request_duration_seconds",
    "Gateway time of an experiment's requests by arm.",
    ["experiment", "arm"],
    buckets=LATENCY_BUCKETS,
)
SKIPPED = Counter(
    "cascade_experiment_skipped_total",
    "Requests an experiment would have claimed but did not: rollout (a rollout in force claims "
    "the slot), overlap (an earlier experiment changed the same thing), interleaving (a second "
    "interleaving experiment in one request), error (it could not be evaluated).",
    ["experiment", "reason"],
)
TEAM_ITEMS = Counter(
    "cascade_interleaving_items_total",
    "Items served by an interleaving experiment, by the team (arm) that contributed them.",
    ["experiment", "team"],
)
REMEMBER_ERRORS = Counter(
    "cascade_experiment_remember_errors_total",
    "Writes of first-given experiment arms to the online store that failed (the user keeps the "
    "hashed arm, which is the same until the experiment's weights change).",
)
