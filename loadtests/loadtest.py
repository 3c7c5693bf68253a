"""`make loadtest`: step an open-loop request rate and judge every stage against its budget.

Against a running stack (``make up``): for each rate, GET /v1/recommendations?user_id=<id>&k=20
(MovieLens users 1-943 plus a share of never-seen ids) on a fixed arrival schedule for
``--step-s`` seconds; /metrics of the gateway and of every stage service is scraped before and
after the step, and the difference of their own histograms gives each stage's p50/p99 there:
the gateway's ``cascade_stage_duration_seconds`` (the stage as the request path saw it),
``cascade_stage_errors_total`` (timeouts, ...), the stage service's
``cascade_http_request_duration_seconds`` (the work itself; the rest is the hop) and the
gateway's route histogram (the whole request, server side). Stops after the step where the
whole path broke badly. Prints a table; writes loadtest.json and index.html with plots.

    python -m loadtests.loadtest [--gateway URL] [--metrics NAME=URL ...] [--rates 25 50 ...]
        [--step-s 20] [--budget config/latency_budget.yaml] [--out reports/loadtest]

Defaults come from the environment where set: CASCADE_GATEWAY_URL, CASCADE_LOADTEST_METRICS
(``name=url,...``), CASCADE_LOADTEST_RATES (``25,50,...``), CASCADE_LOADTEST_STEP_S, the
gateway's budget file (CASCADE_GATEWAY_LATENCY_BUDGET / CASCADE_LATENCY_BUDGET); the stage
services' addresses default to the local runtime's (their settings classes, as ``make up``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from loadtests.budget_verdict import Criteria, PathStep, StageStep, Verdict, broken_badly, judge
from loadtests.load_generator import MAX_CONNECTIONS, LoadResult, open_loop
from loadtests.prom_histograms import Histogram, LabelFilter, Snapshot, scrape
from shared.pipeline.budget import LatencyBudget, load_budget

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RATES = (25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0)
# The stages that are a call to another service (the rest are the gateway's own Redis reads).
STAGE_SERVICE = {
    "candidates": "candidate_generation",
    "filtering": "filtering",
    "ranking": "ranking",
    "reranking": "reranking",
}
# A stage service's work is every route but these (so a renamed stage route still counts).
OPS_ROUTES = frozenset({"/metrics", "/healthz", "/readyz", "/openapi.json", "/docs", "unmatched"})
RECOMMEND_ROUTE = "/v1/recommendations"
STAGE_HIST = "cascade_stage_duration_seconds"
STAGE_ERRORS = "cascade_stage_errors_total"
HTTP_HIST = "cascade_http_request_duration_seconds"


@dataclass
class Settings:
    """Everything one load test run needs (recorded in loadtest.json)."""

    gateway: str
    metrics: dict[str, str]  # service name -> base URL whose /metrics is scraped
    rates: list[float]
    step_s: float
    out: Path
    budget_path: str | None = None
    p99_target_ms: float | None = None  # None: the budget's total_ms
    k: int = 20
    unknown_share: float = 0.1
    warmup_s: float = 5.0  # at the first rate, not measured: cold caches and pools first
    pause_s: float = 1.0  # between steps: the previous step's queues drain
    settle_s: float = 1.0  # after a step, before scraping: late stage calls finish
    max_connections: int = MAX_CONNECTIONS
    seed: int = 0
    criteria: dict[str, float] = field(default_factory=dict)  # overrides of Criteria fields


def default_metrics_urls(gateway: str, given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where to scrape: ``given``, else each stage service at the local runtime's address."""
    # The runtime's addresses come from the services' settings classes, as `make up` reads them.
    urls = {"gateway": gateway, **(given or {})}
    missing = [name for name in STAGE_SERVICE.values() if name not in urls]
    if missing:
        from deploy.local.stack import service_settings

        for name in missing:
            s = service_settings(name, {})
            urls[name] = f"http://{s.host}:{s.port}"
    return urls


def workload(n: int, k: int, unknown_share: float, seed: int) -> list[str]:
    """``n`` request paths: MovieLens users 1-943, ``unknown_share`` of ids never seen."""
    rng = np.random.default_rng(seed)
    known = rng.integers(1, 944, n)
    unknown = rng.random(n) < unknown_share
    return [
        f"{RECOMMEND_ROUTE}?user_id={f'unknown-{seed}-{i}' if unknown[i] else u}&k={k}"
        for i, u in enumerate(known)
    ]


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000.0, 3)


def _quantiles(h: Histogram) -> dict[str, Any]:
    p99 = h.quantile(0.99)
    bucket = None if math.isnan(p99) else [_ms(b) for b in h.bucket_of(p99)]
    return {
        "calls": h.count,
        "p50_ms": _ms(h.quantile(0.5)),
        "p99_ms": _ms(p99),
        "p99_bucket_ms": bucket,
    }


def _service_work(delta: Snapshot | None) -> dict[str, Any] | None:
    if delta is None:
        return None
    return _quantiles(delta.histogram(HTTP_HIST, lambda la: la.get("route") not in OPS_ROUTES))


def _stage_is(stage: str) -> LabelFilter:
    return lambda labels: labels.get("stage") == stage


def stage_figures(
    stages: list[str], gateway: Snapshot, services: Mapping[str, Snapshot | None]
) -> dict[str, dict[str, Any]]:
    """Per stage: the gateway's view (calls, p50/p99, errors by kind) and the service's work."""
    out = {}
    for stage in stages:
        fig = _quantiles(gateway.histogram(STAGE_HIST, _stage_is(stage)))
        errors = gateway.counter_by(STAGE_ERRORS, "kind", _stage_is(stage))
        fig["errors"] = {kind: n for kind, n in errors.items() if n}
        step = StageStep(0.0, fig["calls"], math.nan, math.nan, fig["errors"])
        fig["error_share"] = round(step.error_share, 4)
        fig["starved_share"] = round(step.starved_share, 4)
        service = STAGE_SERVICE.get(stage)
        work = _service_work(services.get(service)) if service else None
        fig["service"] = None if work is None else {"name": service, **work}
        if work and work["p50_ms"] is not None and fig["p50_ms"] is not None:
            fig["hop_p50_ms"] = round(fig["p50_ms"] - work["p50_ms"], 3)  # transport + queueing
        out[stage] = fig
    return out


def _client(res: LoadResult) -> dict[str, Any]:
    lat, lag = res.latencies_ms, res.send_lag_ms
    by_stage = Counter[str]()
    for reason, n in res.degraded_reasons.items():
        by_stage[reason.split(":", 1)[0]] += n
    return {
        "answered": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
        "max_ms": round(float(lat.max()), 3) if lat.size else None,
        "errors": res.errors,
        "error_samples": sorted(set(res.error_samples))[:3],
        "degraded": res.degraded,
        "degraded_share": round(res.degraded / max(res.n, 1), 4),
        "degraded_by_stage": dict(by_stage.most_common()),
        "degraded_reasons": dict(res.degraded_reasons.most_common(8)),
        "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 3) if lag.size else None,
    }


def step_record(
    res: LoadResult,
    stages: list[str],
    before: Mapping[str, Snapshot | None],
    after: Mapping[str, Snapshot | None],
) -> dict[str, Any]:
    """All figures of one step: the client's, the whole request's, each stage's, the generator's."""
    delta: dict[str, Snapshot | None] = {}
    for name, snap in after.items():
        prev = before.get(name)
        delta[name] = snap.since(prev) if snap is not None and prev is not None else None
    gateway = delta.get("gateway")
    if gateway is None:  # without it there is no stage figure at all
        raise RuntimeError(
            f"the gateway's /metrics did not answer around the {res.rate:g} req/s step"
        )
    route = gateway.histogram(HTTP_HIST, lambda la: la.get("route") == RECOMMEND_ROUTE)
    return {
        "rate_rps": res.rate,
        "requests": res.n,
        "achieved_rps": round(res.achieved_rps, 2),
        "wall_s": round(res.wall_s, 3),
        "client": _client(res),
        "gateway_request": _quantiles(route),
        "stages": stage_figures(stages, gateway, delta),
        "generator": {
            "cpu_s": round(res.cpu_s, 4),
            "cpu_ms_per_request": round(res.cpu_s * 1000.0 / max(res.n, 1), 4),
            "cpu_share_of_wall": round(res.cpu_s / res.wall_s, 4) if res.wall_s else None,
        },
        "scrape_failed": sorted(n for n, s in delta.items() if s is None),
    }


def criteria_of(settings: Settings, budget: LatencyBudget) -> Criteria:
    """The verdict's criteria: the p99 target defaults to the budget's total."""
    target = settings.p99_target_ms or budget.total_ms
    return Criteria(p99_target_ms=target, **settings.criteria)


def path_step(record: Mapping[str, Any]) -> PathStep:
    """The whole-path figures of a step record, for the verdict."""
    c = record["client"]
    p99 = c["p99_ms"] if c["p99_ms"] is not None else math.nan
    return PathStep(record["rate_rps"], record["requests"], p99, c["errors"], c["degraded_share"])


def stage_steps(records: list[dict[str, Any]], stages: list[str]) -> dict[str, list[StageStep]]:
    """Each stage's figures per step record, for the verdict."""

    def nan(v: float | None) -> float:
        return math.nan if v is None else v

    return {
        s: [
            StageStep(
                r["rate_rps"],
                r["stages"][s]["calls"],
                nan(r["stages"][s]["p50_ms"]),
                nan(r["stages"][s]["p99_ms"]),
                r["stages"][s]["errors"],
            )
            for r in records
        ]
        for s in stages
    }


def _scrape_all(urls: Mapping[str, str]) -> dict[str, Snapshot | None]:
    out: dict[str, Snapshot | None] = {}
    for name, url in urls.items():
        try:
            out[name] = scrape(url)
        except httpx.HTTPError:
            out[name] = None  # a stage service not scraped: its service-side figures are missing
    return out


def run_step(settings: Settings, index: int, stages: list[str]) -> dict[str, Any]:
    """One rate: scrape, open-loop load, let late calls finish, scrape again; its figures."""
    rate = settings.rates[index]
    n = int(rate * settings.step_s)
    paths = workload(n, settings.k, settings.unknown_share, settings.seed + index)
    before, load_before = _scrape_all(settings.metrics), os.getloadavg()[0]
    load = open_loop(settings.gateway, paths, rate, settings.step_s, settings.max_connections)
    res = asyncio.run(load)
    time.sleep(settings.settle_s)
    record = step_record(res, stages, before, _scrape_all(settings.metrics))
    record["load_avg_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    return record


def run_loadtest(
    settings: Settings, on_step: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Step the rate up, stop after the step that broke badly; every figure and the verdict."""
    budget = load_budget(settings.budget_path)
    stages = list(budget.stages.model_dump())
    crit = criteria_of(settings, budget)
    if _scrape_all({"gateway": settings.gateway})["gateway"] is None:
        raise SystemExit(f"no /metrics at {settings.gateway}: is the stack up (make up)?")
    started, records = time.time(), []
    if settings.warmup_s > 0:  # not measured: cold pools and caches first
        rate, seed = settings.rates[0], settings.seed + 10_000
        paths = workload(int(rate * settings.warmup_s), settings.k, settings.unknown_share, seed)
        asyncio.run(open_loop(settings.gateway, paths, rate, settings.warmup_s))
    for i in range(len(settings.rates)):
        if i:
            time.sleep(settings.pause_s)
        record = run_step(settings, i, stages)
        record["stop"] = broken_badly(path_step(record), crit)
        records.append(record)
        if on_step:
            on_step(record)
        if record["stop"]:
            break
    return {"started_at": started, **build_report(settings, budget, crit, records)}


def build_report(
    settings: Settings, budget: LatencyBudget, crit: Criteria, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """The report of a run: settings, budget, criteria, every step's figures and the verdict."""
    stages = list(budget.stages.model_dump())
    path = [path_step(r) for r in records]
    verdict = judge(budget.stages.model_dump(), stage_steps(records, stages), path, crit)
    return {
        "settings": {**asdict(settings), "out": str(settings.out)},
        "budget": budget.model_dump(),
        "budget_path": settings.budget_path or "config/latency_budget.yaml",
        "criteria": asdict(crit),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
        "stages": stages,
        "steps": records,
        "verdict": verdict_dict(verdict),
    }


def verdict_dict(v: Verdict) -> dict[str, Any]:
    """The verdict as JSON-ready data."""
    return {
        "knee_rps": v.knee_rps,
        "first_broken": v.first_broken,
        "path_breach": {str(rate): why for rate, why in v.path_breach.items()},
        "stages": {name: asdict(sv) for name, sv in v.stages.items()},
    }


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name, "").replace(",", " ").split()
    return raw or None


def _metrics(items: list[str], gateway: str) -> dict[str, str]:
    given = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not url:
            raise SystemExit(f"--metrics wants NAME=URL, got {item!r}")
        given[name] = url.rstrip("/")
    return default_metrics_urls(gateway, given)


def parse_args(argv: list[str] | None = None) -> Settings:
    """Settings from the command line (defaults from the environment, see the module doc)."""
    env_budget = os.environ.get("CASCADE_GATEWAY_LATENCY_BUDGET") or os.environ.get(
        "CASCADE_LATENCY_BUDGET"
    )
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--gateway", default=os.environ.get("CASCADE_GATEWAY_URL", "http://127.0.0.1:8000")
    )
    ap.add_argument(
        "--metrics",
        nargs="*",
        default=_env_list("CASCADE_LOADTEST_METRICS") or [],
        metavar="NAME=URL",
        help="where to scrape /metrics (default: local runtime)",
    )
    rates = [float(r) for r in _env_list("CASCADE_LOADTEST_RATES") or DEFAULT_RATES]
    ap.add_argument("--rates", type=float, nargs="+", default=rates)
    ap.add_argument(
        "--step-s", type=float, default=float(os.environ.get("CASCADE_LOADTEST_STEP_S", 20.0))
    )
    ap.add_argument("--budget", default=env_budget, help="latency budget YAML")
    ap.add_argument(
        "--p99-target-ms",
        type=float,
        default=None,
        help="knee: p99 of the whole request (default: the budget's total_ms)",
    )
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--unknown-share", type=float, default=0.1)
    ap.add_argument("--warmup-s", type=float, default=5.0, help="unmeasured, at the first rate")
    ap.add_argument("--pause-s", type=float, default=1.0, help="between steps")
    ap.add_argument("--settle-s", type=float, default=1.0)
    ap.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)
    for f in fields(Criteria):  # the verdict's thresholds, defaults from Criteria
        if f.name != "p99_target_ms":
            flag = "--" + f.name.replace("_", "-")
            ap.add_argument(flag, type=float, default=None, help=f"default {f.default}")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "loadtest")
    a = ap.parse_args(argv)
    crit = {f.name: v for f in fields(Criteria) if (v := getattr(a, f.name, None)) is not None}
    return Settings(
        gateway=a.gateway.rstrip("/"),
        metrics=_metrics(a.metrics, a.gateway.rstrip("/")),
        rates=sorted(a.rates),
        step_s=a.step_s,
        out=a.out,
        budget_path=a.budget,
        p99_target_ms=a.p99_target_ms,
        k=a.k,
        unknown_share=a.unknown_share,
        warmup_s=a.warmup_s,
        pause_s=a.pause_s,
        settle_s=a.settle_s,
        max_connections=a.max_connections,
        criteria=crit,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: run, print the table, write the report."""
    from loadtests.loadtest_report import format_step, format_table, write_report

    settings = parse_args(argv)
    sys.stdout.write(
        f"load test of {settings.gateway}: rates {settings.rates} req/s, "
        f"{settings.step_s:g} s each\n"
    )

    def progress(record: dict[str, Any]) -> None:
        sys.stdout.write(format_step(record) + "\n")
        sys.stdout.flush()

    report = run_loadtest(settings, progress)
    sys.stdout.write(format_table(report) + "\n")
    files = write_report(report, settings.out)
    sys.stdout.write(f"report: {files['html']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
