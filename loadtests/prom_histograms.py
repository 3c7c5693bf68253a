"""A service's Prometheus series for the load test: ``scrape`` over httpx, plus the core.

Parsing, differencing and PromQL-exact quantiles live in ``shared.observability`` (the rollout
controller judges steps the same way); they are re-exported here so the load test and its
tests keep one import. Only the HTTP fetch is the load test's own: httpx is a load/dev
dependency, which services may not use.
"""

from __future__ import annotations

import httpx

from shared.observability import (
    EMPTY,
    Histogram,
    LabelFilter,
    Labels,
    Snapshot,
    histogram_quantile,
    parse,
)

__all__ = [
    "EMPTY",
    "Histogram",
    "LabelFilter",
    "Labels",
    "Snapshot",
    "histogram_quantile",
    "parse",
    "scrape",
]


def scrape(base_url: str, timeout_s: float = 5.0) -> Snapshot:
    """``GET base_url/metrics``, parsed."""
    resp = httpx.get(f"{base_url.rstrip('/')}/metrics", timeout=timeout_s)
    resp.raise_for_status()
    return parse(resp.text)
