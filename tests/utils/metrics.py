"""Reading a running process's Prometheus metrics in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(base: str) -> dict[str, float]:
    """Every sample of ``base``/metrics as ``name{label=value,...}`` -> value.

    The ``service`` label is left out (one process is one service), labels sorted by name.
    """
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=5).text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "service")
            out[f"{s.name}{{{labels}}}"] = s.value
    return out
