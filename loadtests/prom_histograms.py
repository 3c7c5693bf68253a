"""Prometheus histograms and counters of a service: scrape, difference two scrapes, quantiles.

A load step is judged from the services' own histograms: scrape ``/metrics`` before and after
the step, subtract per series (what ``increase()`` does in PromQL, counter resets included),
then sum the series of interest and interpolate quantiles within buckets exactly as PromQL's
``histogram_quantile`` does. No Python library ships that function (prometheus_client parses the
text format but computes nothing), so it is here, tested against Prometheus's own cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
LabelFilter = Callable[[Mapping[str, str]], bool]


def histogram_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """PromQL's histogram_quantile over cumulative bucket counts (upper bounds ascending)."""
    # As Prometheus: NaN without observations or a +Inf bucket; a quantile in the +Inf bucket
    # is the highest finite bound; the lowest bucket starts at 0 unless its bound is <= 0.
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(bounds) < 2 or not math.isinf(bounds[-1]) or len(bounds) != len(cumulative):
        return math.nan
    counts = list(cumulative)
    for i in range(1, len(counts)):  # floating-point sums may dip: keep them monotonic
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(bounds) - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    lo, below = (0.0, 0.0) if b == 0 else (float(bounds[b - 1]), counts[b - 1])
    in_bucket = counts[b] - below
    if in_bucket <= 0:  # rank 0 on an empty lowest bucket
        return lo
    return lo + (float(bounds[b]) - lo) * (rank - below) / in_bucket


@dataclass(frozen=True)
class Histogram:
    """One histogram: upper bounds (the last +Inf), cumulative counts, sum of observations."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    sum: float = 0.0

    @property
    def count(self) -> float:
        """Number of observations."""
        return self.cumulative[-1] if self.cumulative else 0.0

    def quantile(self, q: float) -> float:
        """The q-quantile, interpolated within its bucket (NaN when empty)."""
        return histogram_quantile(q, self.bounds, self.cumulative)

    def bucket_of(self, value: float) -> tuple[float, float]:
        """The (lower, upper] bounds of the bucket holding ``value`` (a quantile's resolution)."""
        lower = 0.0
        for bound in self.bounds:
            if value <= bound:
                return lower, bound
            lower = bound
        return lower, math.inf

    def since(self, before: Histogram | None) -> Histogram:
        """The observations made after ``before`` (all of them after a counter reset)."""
        if before is None or before.bounds != self.bounds:
            return self
        if any(a < b for a, b in zip(self.cumulative, before.cumulative, strict=True)):
            return self  # the process restarted between the scrapes: it counted from zero
        cumulative = tuple(a - b for a, b in zip(self.cumulative, before.cumulative, strict=True))
        return Histogram(self.bounds, cumulative, self.sum - before.sum)

    def __add__(self, other: Histogram) -> Histogram:
        if not other.bounds:
            return self
        if not self.bounds:
            return other
        if other.bounds != self.bounds:
            raise ValueError(f"bucket bounds differ: {self.bounds} vs {other.bounds}")
        cumulative = tuple(a + b for a, b in zip(self.cumulative, other.cumulative, strict=True))
        return Histogram(self.bounds, cumulative, self.sum + other.sum)


EMPTY = Histogram((), ())


@dataclass(frozen=True)
class Snapshot:
    """Every histogram and counter series of one scrape, keyed by metric name and labels."""

    histograms: Mapping[tuple[str, Labels], Histogram]
    counters: Mapping[tuple[str, Labels], float]

    def since(self, before: Snapshot) -> Snapshot:
        """Per-series increase from ``before`` to this scrape (PromQL ``increase``)."""
        hist = {k: h.since(before.histograms.get(k)) for k, h in self.histograms.items()}
        counters = {}
        for key, value in self.counters.items():
            prev = before.counters.get(key, 0.0)
            counters[key] = value - prev if value >= prev else value  # reset: counted from 0
        return Snapshot(hist, counters)

    def histogram(self, name: str, where: LabelFilter | None = None) -> Histogram:
        """The sum of the series of histogram ``name`` whose labels pass ``where``."""
        total = EMPTY
        for (metric, labels), hist in self.histograms.items():
            if metric == name and (where is None or where(dict(labels))):
                total = total + hist
        return total

    def counter_by(
        self, name: str, label: str, where: LabelFilter | None = None
    ) -> dict[str, float]:
        """Counter ``name`` summed by the value of ``label`` (series passing ``where``)."""
        out: dict[str, float] = {}
        for (metric, labels), value in self.counters.items():
            d = dict(labels)
            if metric == name and (where is None or where(d)):
                out[d.get(label, "")] = out.get(d.get(label, ""), 0.0) + value
        return out


def parse(text: str) -> Snapshot:
    """A Prometheus text exposition as a Snapshot (histograms and counters; gauges dropped)."""
    buckets: dict[tuple[str, Labels], dict[float, float]] = {}
    sums: dict[tuple[str, Labels], float] = {}
    counters: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "le")
            if family.type == "histogram" and s.name == f"{family.name}_bucket":
                buckets.setdefault((family.name, labels), {})[float(s.labels["le"])] = s.value
            elif family.type == "histogram" and s.name == f"{family.name}_sum":
                sums[(family.name, labels)] = s.value
            elif family.type == "counter" and s.name.endswith("_total"):
                counters[(s.name, labels)] = s.value
    hist = {}
    for key, by_bound in buckets.items():
        bounds = tuple(sorted(by_bound))
        hist[key] = Histogram(bounds, tuple(by_bound[b] for b in bounds), sums.get(key, 0.0))
    return Snapshot(hist, counters)


def scrape(base_url: str, timeout_s: float = 5.0) -> Snapshot:
    """``GET base_url/metrics``, parsed."""
    resp = httpx.get(f"{base_url.rstrip('/')}/metrics", timeout=timeout_s)
    resp.raise_for_status()
    return parse(resp.text)
