"""The latency window from Prometheus, when one is configured: the same figures, its storage.

Two instant queries of bucket increases over the window, summed by job (Prometheus's job is
the service's name in both the local runtime's and compose's scrape configs) and label; the
buckets become ``shared.observability`` histograms, so the quantiles are computed by the same
code as from the console's own scrapes.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import shared.observability as obs
from services.console.latency import REQUEST, ROUTE, STAGE
from services.console.scrapes import Window
from services.console.upstream import Upstream
from shared.platform.http_client import UpstreamError


def queries(window_s: float) -> list[tuple[str, str]]:
    """(histogram name, PromQL of its bucket increases by job and label) for ``window_s``."""
    w = f"{int(window_s)}s"
    return [
        (STAGE, f"sum by (job, stage, le) (increase({STAGE}_bucket[{w}]))"),
        (REQUEST, f'sum by (job, route, le) (increase({REQUEST}_bucket{{route="{ROUTE}"}}[{w}]))'),
    ]


async def prometheus_window(client: Upstream, window_s: float) -> Window:
    """Per-job increases over the last ``window_s``; UpstreamError if Prometheus fails."""
    buckets: dict[str, dict[obs.SeriesKey, dict[float, float]]] = {}
    for name, promql in queries(window_s):
        answer = await client.call("GET", "/api/v1/query?" + urlencode({"query": promql}))
        data = answer.data if isinstance(answer.data, dict) else {}
        if not answer.ok or data.get("status") != "success":
            raise UpstreamError("prometheus", "status", f"{promql}: {answer.status} {data}")
        for r in data["data"]["result"]:
            labels = dict(r["metric"])
            job, le = labels.pop("job", ""), float(labels.pop("le", "nan"))
            key = (name, frozenset(labels.items()))
            buckets.setdefault(job, {}).setdefault(key, {})[le] = float(r["value"][1])
    series = {job: obs.Snapshot(obs.histograms_of(b, {}), {}) for job, b in buckets.items()}
    return Window(series, window_s, time.time())
