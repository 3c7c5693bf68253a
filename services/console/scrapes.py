"""A ring buffer of the services' ``/metrics`` scrapes and the increase over a recent window.

Without Prometheus the console is its own short-term store: every ``scrape_s`` it reads each
service's exposition (parsed by ``shared.observability``, the parser the rollout controller and
the load test use), keeps only the families its pages read, and answers "what happened in the
last W seconds" as the per-series increase between the newest scrape and the newest one at
least W seconds older (PromQL's ``increase`` over W, counter resets included).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import shared.observability as obs

PROCESS_START = "process_start_time_seconds"
KEPT = frozenset(
    {
        "cascade_stage_duration_seconds",
        "cascade_http_request_duration_seconds",
        "cascade_models_held",
        "cascade_ingest_consumer_lag",
        "cascade_offline_sink_consumer_lag",
        "cascade_exposure_lag_messages",
        "cascade_feature_freshness_seconds",
        "cascade_consumer_failures_in_a_row",
        "cascade_consumer_dead_letters_total",
        PROCESS_START,
    }
)


@dataclass(frozen=True)
class Scrape:
    """One round of scrapes: each instance's series (``KEPT`` only) and why others failed."""

    ts: float
    series: Mapping[str, obs.Snapshot]
    errors: Mapping[str, str] = field(default_factory=dict)


def kept(text: str) -> obs.Snapshot:
    """The families the console reads, from one text exposition."""
    return obs.parse(text).select(KEPT)


def _start_time(snap: obs.Snapshot) -> float | None:
    for (name, _), value in snap.gauges.items():
        if name == PROCESS_START:
            return value
    return None


def increase(before: obs.Snapshot | None, after: obs.Snapshot, since_ts: float) -> obs.Snapshot:
    """One instance's increase from ``before`` (None: not scraped then) to ``after``.

    A process that started after ``since_ts`` counted everything inside the window, so its
    whole series is the increase; one that was running but not scraped then is left out (its
    totals would be its whole history)."""
    started = _start_time(after)
    fresh = started is not None and started >= since_ts
    if before is None or (started is not None and started != _start_time(before)):
        return after if fresh else obs.Snapshot({}, {}, after.gauges)
    return after.since(before)


@dataclass(frozen=True)
class Window:
    """The per-instance increase over ``span_s`` seconds ending at ``end_ts`` (span 0: only
    one scrape so far, nothing to difference)."""

    series: Mapping[str, obs.Snapshot]
    span_s: float
    end_ts: float


class ScrapeRing:
    """The last ``keep_s`` seconds of scrapes, oldest first."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._scrapes: deque[Scrape] = deque()

    def add(self, scrape: Scrape) -> None:
        """Append a scrape; drop those older than ``keep_s`` before it (one is kept beyond,
        so that a full window still has its starting point)."""
        self._scrapes.append(scrape)
        while len(self._scrapes) > 2 and self._scrapes[1].ts <= scrape.ts - self.keep_s:
            self._scrapes.popleft()

    def __len__(self) -> int:
        return len(self._scrapes)

    def latest(self) -> Scrape | None:
        """The newest scrape, if any."""
        return self._scrapes[-1] if self._scrapes else None

    def window(self, seconds: float) -> Window | None:
        """The increase over the last ``seconds`` (or as far back as kept); None if empty."""
        if not self._scrapes:
            return None
        end = self._scrapes[-1]
        base = self._scrapes[0]
        for scrape in self._scrapes:
            if scrape.ts <= end.ts - seconds:
                base = scrape
        if base is end:
            return Window({}, 0.0, end.ts)
        series = {
            name: increase(base.series.get(name), snap, base.ts)
            for name, snap in end.series.items()
        }
        return Window(series, end.ts - base.ts, end.ts)


def quantiles_ms(hist: obs.Histogram, qs: Iterable[float] = (0.5, 0.99)) -> list[float | None]:
    """Quantiles of a latency histogram in milliseconds (None without observations)."""
    out: list[float | None] = []
    for q in qs:
        value = hist.quantile(q) if hist.count > 0 else math.nan
        out.append(None if math.isnan(value) else round(value * 1000.0, 3))
    return out
