"""``make soak``: the serving stack under steady load for minutes, watched for leaks.

Starts what the serving benchmark starts (Redis with MovieLens-100K, the broker, the four stage
services and the gateway, served lists logged), plus the events API and the ingest worker, so
events flow into Redis while the gateway serves. Then, for ``--minutes`` (default 10):

- an open-loop request rate on the gateway (``--rate``, default 70% of ``--capacity``, the
  highest rate within the latency budget the serving benchmark measured here: 75 req/s);
- the traffic simulator's users (``loadtests.simulator``) asking for lists and posting their
  clicks, likes and watches to the events API;
- every ``--sample-s`` seconds: each process's resident memory (/proc/<pid>/status VmRSS),
  Redis's used memory and key count, the window's errors, degraded share and p99.

Verdict (exit 1 when a check fails): no errors; every Cascade process's RSS at the end within
10% of its RSS after the warm-up (the first ``--warmup-s``); Redis's keys other than the dedupe
marks within the bound of the ids in play (the dataset's users times the per-user key families,
its items times the per-item keys, plus the global keys): the simulator's users get their first
impressions and clicks over the run, so that count rises towards the bound, never past it. Not
judged, reported: the local broker (Tansu keeps every message in memory: its RSS grows with what
was produced; Kafka in compose retains on disk), Redis's memory and RSS, and its dedupe marks (one
per event, each expiring after the dedupe TTL: they grow with the event rate until then, which is
their bound; compose caps the whole with maxmemory).
Writes ``reports/soak/soak.json``, ``soak.md`` (the table) and ``soak.png`` (RSS, Redis memory
and p99 over time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import redis

from deploy.local.processes import start, stop, wait_ready
from deploy.local.stack import service_on_free_port
from loadtests.bench_serving import _paths, _platform, _users
from loadtests.load_generator import open_loop
from loadtests.serving_stack import serving_stack

REPO = Path(__file__).resolve().parents[1]
RSS_GROWTH_LIMIT = 0.10
NOT_JUDGED = {
    "broker": "memory-only local broker: keeps every message produced",
    "redis": "holds the dedupe marks of the run's events (bounded by their TTL)",
}
PER_USER_KEYS = 6  # {u:<id>}: h, histz, seenz, blk, imp, arms (shared/online_store/keys.py)
PER_ITEM_KEYS = 2  # {i}:item:<id>, {i}:ictr:<id>
GLOBAL_KEYS = 200  # catalog sets, trending, one popularity set per segment, ...
MEASURED_CAPACITY_RPS = 75.0  # docs/serving.md, highest rate within the budget on this machine


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def growth(series: list[float], warm: int) -> float:
    """Relative growth of a series from its value after the warm-up to its last value."""
    base = series[min(warm, len(series) - 1)]
    return (series[-1] - base) / base if base > 0 else 0.0


def _window(url: str, paths: list[str], rate: float, seconds: float) -> dict[str, Any]:
    res = asyncio.run(open_loop(url, paths, rate, seconds))
    lat = res.latencies_ms
    return {
        "requests": res.n,
        "errors": res.errors,
        "degraded_share": round(res.degraded / max(res.n, 1), 4),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        "error_samples": res.error_samples[:3],
    }


def key_bound(data: Path) -> int:
    """Redis keys the ids of ``data`` (MovieLens atomic files) can make, dedupe marks aside."""
    users = sum(1 for _ in (data / "ml-100k.user").open()) - 1
    items = sum(1 for _ in (data / "ml-100k.item").open()) - 1
    return users * PER_USER_KEYS + items * PER_ITEM_KEYS + GLOBAL_KEYS


def verdict(samples: list[dict[str, Any]], warm: int, bound: int) -> dict[str, Any]:
    """The checks of a finished run: errors, RSS growth per process, Redis keys in bound."""
    names = sorted(samples[0]["rss_mb"])
    rss = {n: growth([s["rss_mb"][n] for s in samples], warm) for n in names}
    judged = [g for n, g in rss.items() if n not in NOT_JUDGED]
    other_keys = [s["redis_keys"] - s["redis_marks"] for s in samples]
    keys_growth = growth(other_keys, warm)
    errors = sum(s["errors"] for s in samples)
    checks = {
        "no errors": errors == 0,
        "RSS growth < 10% for every Cascade process": all(g < RSS_GROWTH_LIMIT for g in judged),
        f"Redis keys other than dedupe marks <= {bound} (the ids in play)": max(other_keys)
        <= bound,
    }
    return {
        "checks": checks,
        "passed": all(checks.values()),
        "errors": errors,
        "rss_growth": {n: round(g, 4) for n, g in rss.items()},
        "redis_growth": round(growth([s["redis_used_mb"] for s in samples], warm), 4),
        "redis_keys_growth": round(keys_growth, 4),
        "redis_key_bound": bound,
    }


def table(report: dict[str, Any]) -> str:
    """Markdown: one row per process (RSS after the warm-up and at the end), then the checks."""
    samples, warm = report["samples"], report["warmup_samples"]
    first, last = samples[min(warm, len(samples) - 1)], samples[-1]
    lines = [
        "| process | RSS after warm-up (MB) | RSS at the end (MB) | growth |",
        "|---|---|---|---|",
    ]
    for name, g in report["verdict"]["rss_growth"].items():
        note = f" (not judged: {NOT_JUDGED[name]})" if name in NOT_JUDGED else ""
        lines.append(
            f"| {name} | {first['rss_mb'][name]:.1f} | {last['rss_mb'][name]:.1f} | "
            f"{100 * g:+.1f}%{note} |"
        )
    v = report["verdict"]
    other = [s["redis_keys"] - s["redis_marks"] for s in (first, last)]
    lines += [
        f"| Redis used memory | {first['redis_used_mb']:.1f} | {last['redis_used_mb']:.1f} | "
        f"{100 * v['redis_growth']:+.1f}% (reported) |",
        f"| Redis keys without dedupe marks | {other[0]} | {other[1]} | "
        f"{100 * v['redis_keys_growth']:+.1f}% (bound {v['redis_key_bound']}) |",
        f"| Redis dedupe marks (expire after the dedupe TTL) | {first['redis_marks']} | "
        f"{last['redis_marks']} | (reported) |",
    ]
    lines += [
        "",
        f"{report['minutes']} min at {report['rate_rps']} req/s (+ simulated users), "
        f"{sum(s['requests'] for s in samples)} requests, "
        f"{report['verdict']['errors']} errors; load average {report['load_avg']}",
        "",
    ]
    lines += [
        f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in report["verdict"]["checks"].items()
    ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """RSS per process, Redis memory and the gateway's p99 over time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for name in sorted(samples[0]["rss_mb"]):
        axes[0].plot(t, [s["rss_mb"][name] for s in samples], label=name)
    axes[0].set_ylabel("RSS (MB)")
    axes[0].legend(fontsize=7, ncol=3)
    axes[1].plot(t, [s["redis_used_mb"] for s in samples], color="tab:red")
    axes[1].set_ylabel("Redis used (MB)")
    axes[2].plot(t, [s["p99_ms"] or 0 for s in samples], color="tab:purple")
    axes[2].set_ylabel("gateway p99 (ms)")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.axvline(t[min(report["warmup_samples"], len(t) - 1)], color="grey", ls=":", lw=1)
    fig.suptitle(f"soak: {report['minutes']} min at {report['rate_rps']} req/s")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(
    minutes: float,
    rate: float,
    sample_s: float,
    warmup_s: float,
    sim_rate: float,
    models: str | None,
    out: Path,
) -> dict[str, Any]:
    """Start everything, soak, sample; the report."""
    log_dir = REPO / ".run" / "soak"
    log_dir.mkdir(parents=True, exist_ok=True)
    data = REPO / "data" / "ml-100k"
    samples: list[dict[str, Any]] = []
    with ExitStack() as stack, _platform(log_dir, models, data) as (env, infra_pids):
        procs = stack.enter_context(serving_stack(env, log_dir))
        for name in ("events", "ingest"):
            procs[name] = start(service_on_free_port(name, env), log_dir)
            stack.callback(stop, procs[name])
            wait_ready(procs[name])
        pids = {
            **{n: p.pid for n, p in procs.items()},
            "redis": infra_pids["redis"],
            "broker": infra_pids["broker"],
        }
        client = redis.Redis.from_url(env["CASCADE_REDIS_URL"])
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadtests.simulator",
                "--gateway",
                procs["gateway"].spec.url,
                "--events",
                procs["events"].spec.url,
                "--rate",
                str(sim_rate),
                "--duration",
                str(minutes * 60 + 30),
                "--seed",
                "1",
                "--data",
                str(data),
            ],
            cwd=REPO,
            stdout=open(log_dir / "simulator.log", "ab"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        stack.callback(sim.terminate)
        paths = _paths(_users(4000, seed=7))
        t0 = time.monotonic()
        while time.monotonic() - t0 < minutes * 60:
            window = _window(procs["gateway"].spec.url, paths, rate, sample_s)
            info = client.info("memory")
            sample = {
                "t_s": round(time.monotonic() - t0, 1),
                **window,
                "rss_mb": {n: round(rss_mb(p), 1) for n, p in pids.items()},
                "redis_used_mb": round(int(info["used_memory"]) / 2**20, 2),
                "redis_keys": int(client.dbsize()),
                "redis_marks": sum(1 for _ in client.scan_iter(match="ev:*", count=5000)),
            }
            samples.append(sample)
            sys.stdout.write(
                f"{sample['t_s']:7.0f} s  p99 {sample['p99_ms']} ms  errors {sample['errors']}  "
                f"redis {sample['redis_used_mb']} MB / {sample['redis_keys']} keys\n"
            )
            sys.stdout.flush()
            paths = paths[int(rate * sample_s) :] + paths[: int(rate * sample_s)]
        exited = sorted(n for n, p in procs.items() if not p.alive())
    warm = max(1, int(warmup_s // sample_s))
    report: dict[str, Any] = {
        "minutes": minutes,
        "rate_rps": rate,
        "simulator_rps": sim_rate,
        "sample_s": sample_s,
        "warmup_samples": warm,
        "samples": samples,
        "exited_during_run": exited,
        "load_avg": round(os.getloadavg()[0], 2),
    }
    judged = verdict(samples, warm, key_bound(data))
    if exited:
        judged["checks"]["no process exited"] = False
        judged["passed"] = False
    report["verdict"] = judged
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1))
    (out / "soak.md").write_text(table(report))
    plot(report, out / "soak.png")
    return report


def main(argv: list[str] | None = None) -> int:
    """Soak, print the table; exit 1 when a check fails."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument(
        "--capacity",
        type=float,
        default=MEASURED_CAPACITY_RPS,
        help="highest rate within the budget (make bench); the soak runs at 70%%",
    )
    ap.add_argument(
        "--rate", type=float, default=None, help="request rate (default 0.7 x capacity)"
    )
    ap.add_argument("--simulator-rate", type=float, default=5.0, help="simulated users' requests/s")
    ap.add_argument("--sample-s", type=float, default=20.0)
    ap.add_argument("--warmup-s", type=float, default=60.0)
    ap.add_argument("--models", default=None, help="model bundle folder (default: train tiny)")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "soak")
    args = ap.parse_args(argv)
    rate = args.rate if args.rate is not None else round(0.7 * args.capacity, 1)
    report = run(
        args.minutes,
        rate,
        args.sample_s,
        args.warmup_s,
        args.simulator_rate,
        args.models,
        args.out,
    )
    sys.stdout.write(table(report))
    sys.stdout.write(f"written: {args.out}/soak.json, soak.md, soak.png\n")
    return 0 if report["verdict"]["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
