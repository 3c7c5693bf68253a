"""Reading Prometheus metrics without a Prometheus library that computes: text, deltas, quantiles.

- ``parse`` (prom_text.py): a text exposition (``/metrics``) as a ``Snapshot`` of histogram,
  counter and gauge series keyed by name and labels.
- ``Snapshot.since``: the per-series increase between two snapshots, counter resets included
  (PromQL ``increase``); ``Snapshot.histogram`` / ``histogram_by`` / ``counter_by`` sum series
  (PromQL ``sum by``); ``combine`` sums snapshots of several instances.
- ``histogram_quantile`` / ``Histogram.quantile``: PromQL's interpolation within buckets, exact.

Pure functions and frozen dataclasses; fetching the text is the caller's job.
"""

from shared.observability.prom_text import (
    EMPTY,
    Histogram,
    LabelFilter,
    Labels,
    SeriesKey,
    Snapshot,
    combine,
    histogram_quantile,
    histograms_of,
    parse,
)

__all__ = [
    "EMPTY",
    "Histogram",
    "LabelFilter",
    "Labels",
    "SeriesKey",
    "Snapshot",
    "combine",
    "histogram_quantile",
    "histograms_of",
    "parse",
]
