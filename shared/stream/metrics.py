"""Prometheus metrics every consumer of a topic shares, labelled by its group id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DEAD_LETTERS = Counter(
    "cascade_consumer_dead_letters_total",
    "Records sent to the dead-letter topic, by consumer group and reason "
    "(malformed: did not decode; rejected: the store refused its effects; "
    "handler: failed in the handler after the bounded retries).",
    ["consumer", "reason"],
)
RETRIES = Counter(
    "cascade_consumer_retries_total",
    "Batches retried after their handler failed, by consumer group.",
    ["consumer"],
)
FAILURES_IN_A_ROW = Gauge(
    "cascade_consumer_failures_in_a_row",
    "Consecutive failures of the batch in hand (0 once it succeeds); at the stuck threshold "
    "the consumer reports not ready.",
    ["consumer"],
)
