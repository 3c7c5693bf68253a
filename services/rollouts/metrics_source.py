"""Where the controller reads the services' metrics: Prometheus when it runs, ``/metrics`` if not.

A step is judged from two snapshots of the same series (at the step's start and now): the
gateways' traffic per rollout arm and outcome, their latency histograms, the shadow's runs and
agreement, and the models every serving service holds. Both sources build the same
``Snapshot``, whose series carry the ``instance`` they came from (Prometheus's ``instance``
label, or the scrape target's name) and only the family's own labels (``job`` and the rest
dropped); the figures below sum over instances *after* differencing, because a counter reset is
only visible per instance: summed first, one replica's restart would look like a drop of the
total (or hide inside the others' growth) and bias the step's figures.

A source that cannot answer raises ``MetricsUnavailable`` (the controller then holds and says
why): partial data would bias a guardrail, so a scrape target that fails fails the snapshot,
unless the source was configured ``allow_partial``, which reports what is missing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlencode

import shared.observability as obs
from shared.platform.http_client import ServiceClient, UpstreamError

INSTANCE = "instance"
REQUESTS = "cascade_rollout_requests_total"
LATENCY = "cascade_rollout_request_duration_seconds"
SHADOW_RUNS = "cascade_shadow_requests_total"
SHADOW_LATENCY = "cascade_shadow_duration_seconds"
SHADOW_AGREEMENT = "cascade_shadow_agreement"
SHADOW_SCORE_DELTA = "cascade_shadow_score_delta"
MODELS_HELD = "cascade_models_held"
# prometheus_client's default registry (every service's) exports it: a restart is certain when
# it changes, even if the new process has already counted past the old one's totals.
PROCESS_START = "process_start_time_seconds"


@dataclass(frozen=True)
class Family:
    """A metric family the controller reads: its name (counters with ``_total``) and labels."""

    name: str
    kind: Literal["counter", "histogram", "gauge"]
    labels: tuple[str, ...]


FAMILIES = (
    Family(REQUESTS, "counter", ("rollout", "arm", "outcome")),
    Family(LATENCY, "histogram", ("rollout", "arm")),
    Family(SHADOW_RUNS, "counter", ("rollout", "outcome")),
    Family(SHADOW_LATENCY, "histogram", ("rollout",)),
    Family(SHADOW_AGREEMENT, "histogram", ("rollout", "stage", "measure")),
    Family(SHADOW_SCORE_DELTA, "histogram", ("rollout",)),
    Family(MODELS_HELD, "gauge", ("service", "slot", "alias", "model")),
    Family(PROCESS_START, "gauge", ()),
)


class MetricsUnavailable(Exception):
    """The metrics could not be read; ``source`` names where from and ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"metrics unavailable from {source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class Snapshot:
    """Cumulative values of the controller's series (``FAMILIES``) at one moment, per instance.

    ``missing`` names the instances whose series are absent and why (a scrape target that
    failed under ``allow_partial``, a target Prometheus failed to scrape): the figures leave
    such an instance out of any step it is missing at either end of.
    """

    series: obs.Snapshot
    source: str
    missing: Mapping[str, str] = field(default_factory=dict)


class MetricsSource(Protocol):
    """Reads the current cumulative series of ``FAMILIES``, summed per instance and label set."""

    name: str

    async def snapshot(self) -> Snapshot:
        """The series now; MetricsUnavailable when they cannot be read (whole)."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections."""
        ...


def _reduced(key: obs.SeriesKey, keep: Sequence[str], instance: str | None) -> obs.SeriesKey:
    """``key`` with only the ``keep`` labels (non-empty, as Prometheus drops empty ones)."""
    labels = {n: v for n, v in key[1] if n in keep and v}
    if instance is not None:
        labels[INSTANCE] = instance
    return key[0], frozenset(labels.items())


def controller_series(snap: obs.Snapshot, instance: str) -> obs.Snapshot:
    """The ``FAMILIES`` series of one instance's exposition, labelled with ``instance``.

    Only each family's own labels are kept (as Prometheus's ``sum by`` does); series that then
    coincide (an exporter's extra label) are summed.
    """
    kinds = {f.name: f for f in FAMILIES}

    def reduced(key: obs.SeriesKey, kind: str) -> obs.SeriesKey | None:
        family = kinds.get(key[0])
        if family is None or family.kind != kind:
            return None
        return _reduced(key, family.labels, instance)

    hist: dict[obs.SeriesKey, obs.Histogram] = {}
    for key, h in snap.histograms.items():
        if (k := reduced(key, "histogram")) is not None:
            hist[k] = hist.get(k, obs.EMPTY) + h
    levels: dict[str, dict[obs.SeriesKey, float]] = {"counter": {}, "gauge": {}}
    for kind, series in (("counter", snap.counters), ("gauge", snap.gauges)):
        for key, value in series.items():
            if (k := reduced(key, kind)) is not None:
                levels[kind][k] = levels[kind].get(k, 0.0) + value
    return obs.Snapshot(hist, levels["counter"], levels["gauge"])


# ---- Prometheus --------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """One instant query and which part of which family its vector fills."""

    family: Family
    part: Literal["value", "bucket", "sum"]
    promql: str


def promql_queries() -> list[Query]:
    """The instant queries of one snapshot: per family, summed by instance and its labels."""
    queries = []
    for f in FAMILIES:
        by = ", ".join((INSTANCE, *f.labels))
        if f.kind == "histogram":
            queries.append(Query(f, "bucket", f"sum by ({by}, le) ({f.name}_bucket)"))
            queries.append(Query(f, "sum", f"sum by ({by}) ({f.name}_sum)"))
        else:
            queries.append(Query(f, "value", f"sum by ({by}) ({f.name})"))
    return queries


DOWN_TARGETS = "up == 0"


class PrometheusSource:
    """The series from Prometheus's HTTP API: one instant query per family part, at one time."""

    def __init__(self, base_url: str, timeout_s: float = 2.0) -> None:
        self.name = f"prometheus {base_url.rstrip('/')}"
        self._client = ServiceClient("prometheus", base_url, timeout_s=timeout_s)

    async def snapshot(self) -> Snapshot:
        """Every query evaluated at the same instant (so a histogram's buckets and sum agree)."""
        at = f"{time.time():.3f}"
        queries = promql_queries()
        answers = await asyncio.gather(
            *(self._query(q.promql, at) for q in queries),
            self._query(DOWN_TARGETS, at),
            return_exceptions=True,
        )
        vectors: list[list[tuple[dict[str, str], float]]] = []
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer  # the first failure; the others were awaited, not left running
            vectors.append(answer)
        missing = {
            m.get(INSTANCE, "?"): f"Prometheus failed to scrape it (job {m.get('job', '?')})"
            for m, _ in vectors[-1]
        }
        return Snapshot(self._series(queries, vectors[:-1]), self.name, missing)

    def _series(
        self, queries: Sequence[Query], vectors: Sequence[list[tuple[dict[str, str], float]]]
    ) -> obs.Snapshot:
        buckets: dict[obs.SeriesKey, dict[float, float]] = {}
        sums: dict[obs.SeriesKey, float] = {}
        counters: dict[obs.SeriesKey, float] = {}
        gauges: dict[obs.SeriesKey, float] = {}
        for query, vector in zip(queries, vectors, strict=True):
            f = query.family
            for labels, value in vector:
                key = _reduced((f.name, frozenset(labels.items())), (INSTANCE, *f.labels), None)
                if query.part == "bucket":
                    buckets.setdefault(key, {})[float(labels.get("le", "nan"))] = value
                elif query.part == "sum":
                    sums[key] = value
                elif f.kind == "counter":
                    counters[key] = value
                else:
                    gauges[key] = value
        return obs.Snapshot(obs.histograms_of(buckets, sums), counters, gauges)

    async def _query(self, promql: str, at: str) -> list[tuple[dict[str, str], float]]:
        path = "/api/v1/query?" + urlencode({"query": promql, "time": at})
        try:
            answer = await self._client.get_json(path)
        except UpstreamError as exc:
            raise MetricsUnavailable(self.name, f"{exc.kind}: {exc.detail}") from exc
        try:
            if answer["status"] != "success" or answer["data"]["resultType"] != "vector":
                raise ValueError(f"status {answer['status']}: {answer.get('error', '')}")
            return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            reason = f"unexpected answer to {promql!r}: {exc!r}"
            raise MetricsUnavailable(self.name, reason) from exc

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()


# ---- direct scrape -----------------------------------------------------------------------
class ScrapeSource:
    """The series scraped from each target's ``/metrics`` (name -> base URL), concurrently.

    A target's name becomes its series' ``instance`` label. A target that fails fails the
    snapshot, unless ``allow_partial`` (then it is listed in ``Snapshot.missing``; all
    failing still fails).
    """

    def __init__(
        self, targets: Mapping[str, str], timeout_s: float = 2.0, allow_partial: bool = False
    ) -> None:
        if not targets:
            raise ValueError("ScrapeSource needs at least one scrape target")
        self.name = "scrape of " + ", ".join(targets)
        self.allow_partial = allow_partial
        self._urls = dict(targets)
        self._clients = {
            name: ServiceClient(name, url, timeout_s=timeout_s) for name, url in targets.items()
        }

    async def snapshot(self) -> Snapshot:
        """Every target scraped at once; their series side by side (one instance each)."""
        names = list(self._clients)
        results = await asyncio.gather(*(self._scrape(n) for n in names), return_exceptions=True)
        got: list[obs.Snapshot] = []
        missing: dict[str, str] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, MetricsUnavailable):
                missing[name] = result.reason
            elif isinstance(result, BaseException):
                raise result
            else:
                got.append(result)
        if missing and (not self.allow_partial or not got):
            failed = ", ".join(f"{n} ({self._urls[n]})" for n in missing)
            raise MetricsUnavailable(failed, "; ".join(f"{n}: {r}" for n, r in missing.items()))
        return Snapshot(obs.combine(got), self.name, missing)

    async def _scrape(self, name: str) -> obs.Snapshot:
        try:
            _, body = await self._clients[name].request("GET", "/metrics")
            return controller_series(obs.parse(body.decode()), name)
        except UpstreamError as exc:
            raise MetricsUnavailable(name, f"{exc.kind}: {exc.detail}") from exc
        except ValueError as exc:  # not a text exposition (UnicodeDecodeError is one too)
            raise MetricsUnavailable(name, f"unreadable /metrics: {exc}") from exc

    async def aclose(self) -> None:
        """Close pooled connections."""
        for client in self._clients.values():
            await client.aclose()


def metrics_source(
    prometheus_url: str | None,
    scrape_targets: Mapping[str, str],
    *,
    timeout_s: float = 2.0,
    allow_partial: bool = False,
) -> MetricsSource:
    """Prometheus when a URL is given, else a direct scrape of ``scrape_targets``."""
    if prometheus_url:
        return PrometheusSource(prometheus_url, timeout_s)
    return ScrapeSource(scrape_targets, timeout_s=timeout_s, allow_partial=allow_partial)


# ---- figures of a step -------------------------------------------------------------------
def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else math.nan


def _without(snap: obs.Snapshot, instances: set[str]) -> obs.Snapshot:
    """``snap`` without the series of ``instances``."""
    if not instances:
        return snap

    def kept(key: obs.SeriesKey) -> bool:
        return dict(key[1]).get(INSTANCE) not in instances

    return obs.Snapshot(
        {k: h for k, h in snap.histograms.items() if kept(k)},
        {k: v for k, v in snap.counters.items() if kept(k)},
        {k: v for k, v in snap.gauges.items() if kept(k)},
    )


def _started(snap: obs.Snapshot) -> dict[str, float]:
    """Instance -> its process's start time, where exported."""
    return {
        dict(labels).get(INSTANCE, ""): value
        for (name, labels), value in snap.gauges.items()
        if name == PROCESS_START
    }


def step_delta(before: Snapshot, after: Snapshot) -> obs.Snapshot:
    """Per-series increase from ``before`` to ``after``, counter resets included.

    An instance whose process start time changed restarted: all its counts are new (value
    comparison alone misses a restart once the new process has counted past the old totals).
    An instance missing at either end is left out: one missing at the start and back now
    would count its whole history.
    """
    was, now = _started(before.series), _started(after.series)
    restarted = {i for i, t in now.items() if i in was and was[i] != t}
    delta = after.series.since(_without(before.series, restarted))
    return _without(delta, set(before.missing) | set(after.missing))


@dataclass(frozen=True)
class ArmFigures:
    """One arm's traffic over a step: outcomes, shares (NaN without requests), latency."""

    requests: float
    ok: float
    degraded: float
    model_errors: float  # the rollout's model slots failed (canary: production answered)
    error_rate: float  # model_errors / requests
    degraded_share: float  # degraded / requests
    p50_s: float
    p99_s: float
    latency: obs.Histogram  # the step's histogram, e.g. for ``bucket_of(p99_s)``


def arm_figures(before: Snapshot, after: Snapshot, rollout_id: str) -> dict[str, ArmFigures]:
    """Figures of each arm of ``rollout_id`` over the step (production and canary always)."""
    delta = step_delta(before, after)

    def mine(la: Mapping[str, str]) -> bool:
        return la.get("rollout") == rollout_id

    latency = delta.histogram_by(LATENCY, ["arm"], mine)
    outcomes: dict[str, dict[str, float]] = {"production": {}, "canary": {}}
    for (arm, outcome), value in delta.counters_by(REQUESTS, ["arm", "outcome"], mine).items():
        outcomes.setdefault(arm, {})[outcome] = value
    out = {}
    for arm in sorted(set(outcomes) | {a for (a,) in latency}):
        by = outcomes.get(arm, {})
        hist = latency.get((arm,), obs.EMPTY)
        requests = sum(by.values())
        out[arm] = ArmFigures(
            requests=requests,
            ok=by.get("ok", 0.0),
            degraded=by.get("degraded", 0.0),
            model_errors=by.get("model_error", 0.0),
            error_rate=_ratio(by.get("model_error", 0.0), requests),
            degraded_share=_ratio(by.get("degraded", 0.0), requests),
            p50_s=hist.quantile(0.5),
            p99_s=hist.quantile(0.99),
            latency=hist,
        )
    return out


@dataclass(frozen=True)
class ShadowFigures:
    """The shadow's runs over a step and its agreement with production (means: sum / count)."""

    compared: float
    errors: float
    dropped: float  # not run: the gateway was too busy
    error_share: float  # errors / (compared + errors): of the runs that ran
    dropped_share: float  # dropped / all
    p99_s: float
    agreement: dict[tuple[str, str], float]  # (stage, measure) -> mean; NaN if none this step
    score_delta_mean: float


def shadow_figures(before: Snapshot, after: Snapshot, rollout_id: str) -> ShadowFigures:
    """Figures of the shadow of ``rollout_id`` over the step."""
    delta = step_delta(before, after)

    def mine(la: Mapping[str, str]) -> bool:
        return la.get("rollout") == rollout_id

    runs = delta.counter_by(SHADOW_RUNS, "outcome", mine)
    compared, errors = runs.get("compared", 0.0), runs.get("error", 0.0)
    dropped = runs.get("dropped", 0.0)
    agreement = delta.histogram_by(SHADOW_AGREEMENT, ["stage", "measure"], mine)
    return ShadowFigures(
        compared=compared,
        errors=errors,
        dropped=dropped,
        error_share=_ratio(errors, compared + errors),
        dropped_share=_ratio(dropped, compared + errors + dropped),
        p99_s=delta.histogram(SHADOW_LATENCY, mine).quantile(0.99),
        agreement={(s, m): h.mean for (s, m), h in sorted(agreement.items())},
        score_delta_mean=delta.histogram(SHADOW_SCORE_DELTA, mine).mean,
    )


def models_held(snapshot: Snapshot, slot: str, alias: str) -> dict[str, list[str]]:
    """Service -> the model labels behind ``alias`` of ``slot`` that *every* instance holds.

    Labels read ``cascade-ranker/5 (@canary)`` (shared/models/locators.py). A service is listed
    when any of its instances exports ``slot``; one replica still loading leaves its list
    without the new version, so "every service lists the candidate" means it is loaded
    everywhere that answered (``snapshot.missing`` names any that did not).
    """
    instances: dict[str, set[str]] = {}
    held: dict[tuple[str, str], set[str]] = {}
    for (name, labels), value in snapshot.series.gauges.items():
        d = dict(labels)
        if name != MODELS_HELD or d.get("slot") != slot:
            continue
        service, instance = d.get("service", ""), d.get(INSTANCE, "")
        instances.setdefault(service, set()).add(instance)
        if d.get("alias") == alias and value > 0:
            held.setdefault((service, instance), set()).add(d.get("model", ""))
    return {
        service: sorted(set.intersection(*(held.get((service, i), set()) for i in members)))
        for service, members in sorted(instances.items())
    }
