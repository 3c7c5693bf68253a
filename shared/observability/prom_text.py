"""Prometheus text exposition: parse it, difference two snapshots, PromQL-exact quantiles.

A step (of a load test, of a rollout) is judged from the services' own series: take a
snapshot before and after, subtract per series (what ``increase()`` does in PromQL, counter
resets included), then sum the series of interest and interpolate quantiles within buckets
exactly as PromQL's ``histogram_quantile`` does. No Python library ships that function
(prometheus_client parses the text format but computes nothing), so it is here, tested against
Prometheus's own cases. Pure functions and frozen dataclasses: no I/O, so any transport (the
load test's httpx, a service's own client, Prometheus's HTTP API) can feed it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
LabelFilter = Callable[[Mapping[str, str]], bool]
SeriesKey = tuple[str, Labels]  # (metric name, labels without ``le``)


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
    """One histogram: upper bounds (the last +Inf), cumulative counts, sum of observations.

    ``sum`` is NaN when the exposition had none (see ``histograms_of``).
    """

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    sum: float = 0.0

    @property
    def count(self) -> float:
        """Number of observations."""
        return self.cumulative[-1] if self.cumulative else 0.0

    @property
    def mean(self) -> float:
        """Mean of the observations, sum / count (NaN when empty)."""
        return self.sum / self.count if self.count > 0 else math.nan

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


def _matches(labels: Labels, where: LabelFilter | None) -> bool:
    return where is None or where(dict(labels))


@dataclass(frozen=True)
class Snapshot:
    """Every histogram, counter and gauge series of one scrape, keyed by metric name and labels.

    Counters are keyed by their sample name (``..._total``), histograms and gauges by the
    family name.
    """

    histograms: Mapping[SeriesKey, Histogram]
    counters: Mapping[SeriesKey, float]
    gauges: Mapping[SeriesKey, float] = field(default_factory=dict)

    def since(self, before: Snapshot) -> Snapshot:
        """Per-series increase from ``before`` to this scrape (PromQL ``increase``).

        Gauges are levels, not totals: they are kept as they are now.
        """
        hist = {k: h.since(before.histograms.get(k)) for k, h in self.histograms.items()}
        counters = {}
        for key, value in self.counters.items():
            prev = before.counters.get(key, 0.0)
            counters[key] = value - prev if value >= prev else value  # reset: counted from 0
        return Snapshot(hist, counters, self.gauges)

    def histogram(self, name: str, where: LabelFilter | None = None) -> Histogram:
        """The sum of the series of histogram ``name`` whose labels pass ``where``."""
        total = EMPTY
        for (metric, labels), hist in self.histograms.items():
            if metric == name and _matches(labels, where):
                total = total + hist
        return total

    def histogram_by(
        self, name: str, label_names: Sequence[str], where: LabelFilter | None = None
    ) -> dict[tuple[str, ...], Histogram]:
        """Histogram ``name`` summed by the values of ``label_names`` (PromQL ``sum by``)."""
        out: dict[tuple[str, ...], Histogram] = {}
        for (metric, labels), hist in self.histograms.items():
            if metric == name and _matches(labels, where):
                d = dict(labels)
                group = tuple(d.get(n, "") for n in label_names)
                out[group] = out.get(group, EMPTY) + hist
        return out

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

    def counters_by(
        self, name: str, label_names: Sequence[str], where: LabelFilter | None = None
    ) -> dict[tuple[str, ...], float]:
        """Counter ``name`` summed by the values of ``label_names`` (PromQL ``sum by``)."""
        out: dict[tuple[str, ...], float] = {}
        for (metric, labels), value in self.counters.items():
            if metric == name and _matches(labels, where):
                d = dict(labels)
                group = tuple(d.get(n, "") for n in label_names)
                out[group] = out.get(group, 0.0) + value
        return out

    def select(self, names: Container[str]) -> Snapshot:
        """Only the series of the metrics named in ``names`` (counters by ``..._total``)."""
        return Snapshot(
            {k: h for k, h in self.histograms.items() if k[0] in names},
            {k: v for k, v in self.counters.items() if k[0] in names},
            {k: v for k, v in self.gauges.items() if k[0] in names},
        )

    def with_labels(self, extra: Mapping[str, str]) -> Snapshot:
        """Every series with ``extra`` labels added (e.g. which instance it was scraped from)."""
        add = frozenset(extra.items())
        names = set(extra)

        def key(k: SeriesKey) -> SeriesKey:
            return k[0], frozenset((n, v) for n, v in k[1] if n not in names) | add

        return Snapshot(
            {key(k): h for k, h in self.histograms.items()},
            {key(k): v for k, v in self.counters.items()},
            {key(k): v for k, v in self.gauges.items()},
        )


def combine(snapshots: Iterable[Snapshot]) -> Snapshot:
    """One snapshot of several, series with the same name and labels summed (PromQL ``sum``).

    Raises ValueError when two series of one histogram have different bucket bounds.
    """
    hist: dict[SeriesKey, Histogram] = {}
    counters: dict[SeriesKey, float] = {}
    gauges: dict[SeriesKey, float] = {}
    for snap in snapshots:
        for key, h in snap.histograms.items():
            hist[key] = hist.get(key, EMPTY) + h
        for key, value in snap.counters.items():
            counters[key] = counters.get(key, 0.0) + value
        for key, value in snap.gauges.items():
            gauges[key] = gauges.get(key, 0.0) + value
    return Snapshot(hist, counters, gauges)


def parse(text: str) -> Snapshot:
    """A Prometheus text exposition as a Snapshot of its histograms, counters and gauges."""
    buckets: dict[SeriesKey, dict[float, float]] = {}
    sums: dict[SeriesKey, float] = {}
    counters: dict[SeriesKey, float] = {}
    gauges: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        # prometheus_client writes each counter's and histogram's creation time as a gauge
        # ``<name>_created``: a timestamp, not a level anyone judges, so it is left out.
        if family.type == "gauge" and family.name.endswith("_created"):
            continue
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "le")
            if family.type == "histogram" and s.name == f"{family.name}_bucket":
                buckets.setdefault((family.name, labels), {})[float(s.labels["le"])] = s.value
            elif family.type == "histogram" and s.name == f"{family.name}_sum":
                sums[(family.name, labels)] = s.value
            elif family.type == "counter" and s.name.endswith("_total"):
                counters[(s.name, labels)] = s.value
            elif family.type == "gauge":
                gauges[(s.name, labels)] = s.value
    return Snapshot(histograms_of(buckets, sums), counters, gauges)


def histograms_of(
    buckets: Mapping[SeriesKey, Mapping[float, float]], sums: Mapping[SeriesKey, float]
) -> dict[SeriesKey, Histogram]:
    """Histograms from bucket counts by upper bound (any order) and sums, per series.

    A series without a sum gets NaN: prometheus_client writes no ``_sum`` for a histogram
    whose lowest bucket is negative, and a 0 there would read as a mean of 0.
    """
    out = {}
    for key, by_bound in buckets.items():
        bounds = tuple(sorted(by_bound))
        out[key] = Histogram(bounds, tuple(by_bound[b] for b in bounds), sums.get(key, math.nan))
    return out
