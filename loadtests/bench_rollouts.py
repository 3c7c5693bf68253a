"""What rollouts cost the request path, measured (part of ``make bench``).

- ``split``: the gateway's per-request work for a rollout in force (the salted-hash split,
  the variant, the arm's metrics), in microseconds, against no rollout: a library loop.
- ``shadow``: production's latency at ``rate`` req/s through the real gateway with 20% of
  requests shadowed, against the same gateway with the shadow off, in alternating phases of
  one run (so machine noise hits both alike); p50/p99 and the difference.
- ``rollback``: from the moment the controller stops publishing a canary until the gateway's
  answers carry no arm (the gateway polls every second), over several rollbacks.

The controller is a stand-in here (an HTTP server answering ``/v1/assignments`` with what
the benchmark sets), so the figures are the gateway's; the controller's own decision-to-
publish time is a function call (tests/integration/test_rollouts_and_experiments.py checks
the whole path).
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np

from deploy.local.processes import free_port
from loadtests.bench_serving import _paths, _platform, _stats, _users
from loadtests.load_generator import open_loop, sequential
from loadtests.serving_stack import serving_stack
from services.gateway.rollouts.assignment import Assignment, Assignments
from shared.platform.auth import read_headers

REPO = Path(__file__).resolve().parents[1]
ROLLOUT = "bench-ranker"


class StandInController:
    """Answers ``GET /v1/assignments`` with ``self.assignments`` (set by the benchmark)."""

    def __init__(self) -> None:
        self.assignments = Assignments()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                body = msgspec.json.encode(owner.assignments)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return  # quiet: one poll per second per gateway

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, canary: float = 0.0, shadow: float = 0.0) -> None:
        """Publish one ranker rollout at these shares (both 0: none)."""
        version = self.assignments.version + 1
        if canary == 0 and shadow == 0:
            self.assignments = Assignments((), version)
        else:
            a = Assignment(ROLLOUT, ("ranker",), ROLLOUT, canary, shadow)
            self.assignments = Assignments((a,), version)

    @contextmanager
    def running(self) -> Iterator[StandInController]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()


def split_cost(n: int = 50_000) -> dict[str, float]:
    """Microseconds per request of the gateway's rollout work, with and without a rollout."""
    from services.gateway.request_run import RequestRun
    from services.gateway.request_state import RequestState
    from services.gateway.rollouts.follower import AssignmentFollower
    from services.gateway.rollouts.gateway_rollouts import GatewayRollouts
    from shared.pipeline.budget import LatencyBudget
    from shared.pipeline.context import VariantSpec

    base = VariantSpec()
    budget = LatencyBudget()
    out = {}
    for label, assignments in (
        ("none", Assignments()),
        ("one_rollout", Assignments((Assignment(ROLLOUT, ("ranker",), ROLLOUT, 0.5, 0.0),), 1)),
    ):
        follower = AssignmentFollower(None)
        follower.apply(assignments)
        gw = GatewayRollouts(follower, None)
        req = RequestState("r", "u", 20, time.time(), base)
        req.run = RequestRun(budget)
        start = time.perf_counter()
        for i in range(n):
            d = gw.decide(f"user-{i}", f"req-{i}", base)
            if d.arms:
                gw.after(req, d, 0.01)
        out[f"{label}_us"] = round((time.perf_counter() - start) / n * 1e6, 2)
    out["added_us"] = round(out["one_rollout_us"] - out["none_us"], 2)
    return out


def shadow_effect(gateway: str, controller: StandInController, users: list[str], rate: float,
                  phase_s: float, rounds: int) -> dict[str, Any]:  # fmt: skip
    """Production latency with the shadow off and at 20%, alternating phases."""
    lat: dict[str, list[np.ndarray]] = {"off": [], "on": []}
    dropped: dict[str, float] = {}
    for _ in range(rounds):
        for phase, share in (("off", 0.0), ("on", 0.2)):
            controller.set(shadow=share)
            time.sleep(2.5)  # two polls: every gateway follows
            res = asyncio.run(open_loop(gateway, _paths(users), rate, phase_s))
            lat[phase].append(res.latencies_ms[len(res.latencies_ms) // 10 :])
    controller.set()
    metrics = httpx.get(f"{gateway}/metrics", timeout=10).text
    for line in metrics.splitlines():
        if line.startswith("cascade_shadow_requests_total{") and ROLLOUT in line:
            outcome = line.split('outcome="')[1].split('"')[0]
            dropped[outcome] = float(line.rsplit(" ", 1)[1])
    off, on = (_stats(np.concatenate(lat[p])) for p in ("off", "on"))
    return {
        "rate_rps": rate, "phase_s": phase_s, "rounds": rounds, "off": off, "on": on,
        "p99_added_ms": round(on["p99_ms"] - off["p99_ms"], 2),
        "p50_added_ms": round(on["p50_ms"] - off["p50_ms"], 2),
        "shadow_runs": dropped,
    }  # fmt: skip


def rollback_delay(gateway: str, controller: StandInController, repeats: int = 5) -> dict[str, Any]:
    """Seconds from the canary's removal until the gateway's answers carry no arm."""
    delays: list[float] = []
    with httpx.Client(base_url=gateway, timeout=10, headers=read_headers()) as client:
        for _ in range(repeats):
            controller.set(canary=0.999)
            deadline = time.monotonic() + 10
            while not client.get("/v1/recommendations", params={"user_id": "1"}).json()["arms"]:
                assert time.monotonic() < deadline, "the gateway never followed the canary"
                time.sleep(0.05)
            time.sleep(np.random.default_rng(len(delays)).uniform(0, 1))  # any phase of a poll
            controller.set()
            t0 = time.monotonic()
            while client.get("/v1/recommendations", params={"user_id": "1"}).json()["arms"]:
                time.sleep(0.02)
            delays.append(time.monotonic() - t0)
    return {"repeats": repeats, "median_s": round(float(np.median(delays)), 3),
            "max_s": round(float(np.max(delays)), 3)}  # fmt: skip


def comparison_cost() -> dict[str, float]:
    """Microseconds per call of the shadow's list comparison and of a team draft (best of many
    short rounds: the figure is about the code, not the neighbours' time slices)."""
    import timeit

    from shared.stats.interleaving import team_draft
    from shared.stats.ranking_diff import compare_lists

    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    for n in (20, 400):
        prod = [f"item-{i}" for i in rng.permutation(10 * n)[:n]]
        shadow = list(prod)
        for j in rng.permutation(n)[: n // 3]:
            shadow[j] = f"new{j}"
        a, b = rng.random(n), rng.random(n)

        def diff(p: list[str] = prod, s: list[str] = shadow, x: Any = a, y: Any = b) -> None:
            compare_lists(p, s, 20, prod_scores=x, shadow_scores=y)

        best = min(timeit.repeat(diff, number=10, repeat=30)) / 10
        out[f"compare_{n}_us"] = round(best * 1e6, 1)
    left = [f"i{i}" for i in range(100)]
    right = [f"i{i}" for i in range(50, 150)]
    best = min(timeit.repeat(lambda: team_draft(left, right, 100, rng), number=200, repeat=10))
    out["team_draft_k100_us"] = round(best / 200 * 1e6, 1)
    return out


def run(models_dir: str | Path | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """Every rollout figure; printed and returned."""
    rate = float(os.environ.get("CASCADE_BENCH_ROLLOUT_RATE", 100.0))
    phase_s = float(os.environ.get("CASCADE_BENCH_ROLLOUT_PHASE_S", 15.0))
    rounds = int(os.environ.get("CASCADE_BENCH_ROLLOUT_ROUNDS", 2))
    result: dict[str, Any] = {"machine": {"load_avg_1m_at_start": round(os.getloadavg()[0], 2)}}
    result["split"] = split_cost()
    result["comparison"] = comparison_cost()
    log_dir = REPO / ".run" / "bench" / "rollouts"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    data = Path(data_dir or REPO / "data") / "ml-100k"
    users = _users(max(int(rate * phase_s), 2000), seed=3)
    with _platform(log_dir, models_dir, data) as (env, _pids), StandInController().running() as c:
        models = env["CASCADE_MODELS_DIR"]
        env = {**env, "CASCADE_MODEL_ALIAS_DIRS": f"shadow={models},canary={models}"}
        gateway_env = {"CASCADE_GATEWAY_ROLLOUTS_URL": f"http://127.0.0.1:{c.port}"}
        with serving_stack(env, log_dir, gateway_env=gateway_env) as procs:
            url = procs["gateway"].spec.url
            asyncio.run(sequential(url, _paths(users[:50])))  # warm code paths and caches
            result["shadow"] = shadow_effect(url, c, users, rate, phase_s, rounds)
            result["rollback"] = rollback_delay(url, c)
    result["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    s, sh, rb = r["split"], r["shadow"], r["rollback"]
    lines = [
        f"rollout split: {s['none_us']} us/request without a rollout, {s['one_rollout_us']} "
        f"with one (+{s['added_us']} us)",
        f"shadow 20% at {sh['rate_rps']:g} req/s: production p50 {sh['off']['p50_ms']} -> "
        f"{sh['on']['p50_ms']} ms, p99 {sh['off']['p99_ms']} -> {sh['on']['p99_ms']} ms "
        f"(+{sh['p99_added_ms']} ms); shadow runs {sh['shadow_runs']}",
        f"rollback at the gateway: median {rb['median_s']} s, max {rb['max_s']} s "
        f"over {rb['repeats']}",
        "shadow comparison per call: " + ", ".join(f"{k} {v}" for k, v in r["comparison"].items()),
    ]
    for line in lines:
        print(line)  # noqa: T201 - a benchmark prints its figures


if __name__ == "__main__":
    run()
