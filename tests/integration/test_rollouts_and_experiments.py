"""Canary and shadow rollouts, and experiments, end to end, on real processes, Redis, broker
and MLflow (one module: they share the stack and its model trained on the whole of
MovieLens-100K, which takes a minute and a half to set up).

The stack: the four stage services and a gateway (following the controller's assignments),
the events API, and the rollout controller, all real processes; models from the session's
MLflow (the tiny trained bundle) and candidates derived from it (``training.candidates``:
a reversed ranker, a slower one, one that fails the schema check). Traffic comes from the
simulator (``loadtests.simulator``): simulated users ask the gateway and post their clicks,
likes and watches to the events API, which the controller joins with the served log.

Shown here: a better model is promoted, a worse one is rolled back on the online metric, a
slower one on the latency guardrail; users keep their arm from step to step; the shadow never
changes what is served; a controller killed mid-rollout resumes; refusals change nothing; a
canary's own deployment crashing sends its users to production and fails the rollout. And
an interleaving experiment of production against the reversed ranker prefers production; an
A/B experiment of a variant keeps its users in their arm when the weights change, and its
analysis and page are served.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import infra
from deploy.local.processes import RunningProcess, free_port, running, start, stop, wait_ready
from deploy.local.stack import service_on_free_port
from tests.integration.serving_fixtures import (
    REPO,
    load_store,
    serving_stack,
    set_production,
    write_budget,
)
from tests.utils.auth import ADMIN

log = logging.getLogger(__name__)

pytestmark = pytest.mark.integration
RANKER = "cascade-ranker"
TERMINAL = {"promoted", "rolled_back", "aborted", "halted"}


@dataclass
class RolloutStack:
    """The running processes, the candidate versions, and how to talk to the controller."""

    procs: dict[str, RunningProcess]
    versions: dict[str, str]  # kind -> cascade-ranker version (original: the trained one)
    mlflow_uri: str
    log_dir: Path
    controller_spec: Any = None
    controller: RunningProcess | None = None
    traffic_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, name: str) -> str:
        if name == "rollouts":
            assert self.controller is not None
            return self.controller.spec.url
        return self.procs[name].spec.url

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        url, headers = f"{self.url('rollouts')}{path}", ADMIN if method != "GET" else None
        return httpx.request(method, url, timeout=60, headers=headers, **kw)

    def start_rollout(self, plan: dict[str, Any]) -> dict[str, Any]:
        resp = self.api("POST", "/v1/rollouts", json=plan)
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def status(self, rollout_id: str) -> dict[str, Any]:
        resp = self.api("GET", f"/v1/rollouts/{rollout_id}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def history(self, rollout_id: str) -> list[dict[str, Any]]:
        resp = self.api("GET", f"/v1/rollouts/{rollout_id}/history")
        assert resp.status_code == 200, resp.text
        decisions: list[dict[str, Any]] = resp.json()["decisions"]
        # kept beside the logs: when an assertion fails, the figures say why
        (self.log_dir / f"history-{rollout_id}.json").write_text(json.dumps(decisions, indent=1))
        return decisions

    def wait(self, rollout_id: str, until: Any, timeout_s: float = 150.0) -> dict[str, Any]:
        """Poll the rollout's status until ``until(status)``; fail with its history if not."""
        deadline = time.monotonic() + timeout_s
        status = self.status(rollout_id)
        while not until(status):
            if time.monotonic() > deadline:
                pytest.fail(f"rollout {rollout_id} stuck at {status['state']}/{status['phase']} "
                            f"step {status['step']}: {self.history(rollout_id)}")  # fmt: skip
            time.sleep(0.5)
            status = self.status(rollout_id)
        return status

    def aliases(self) -> dict[str, str]:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.mlflow_uri, registry_uri=self.mlflow_uri)
        return dict(client.get_registered_model(RANKER).aliases)

    def set_production(self, version: str) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.mlflow_uri, registry_uri=self.mlflow_uri)
        client.set_registered_model_alias(RANKER, "production", version)

    def wait_arm(self, rollout_id: str, timeout_s: float = 10.0) -> None:
        """Until the gateway applies the rollout (it polls the controller twice a second)."""
        deadline = time.monotonic() + timeout_s
        while rollout_id not in self.recommend("arm-probe")["arms"]:
            assert time.monotonic() < deadline, f"the gateway never applied {rollout_id}"
            time.sleep(0.1)

    def wait_current(self, timeout_s: float = 15.0) -> None:
        """Until the gateway holds the split the controller has now: a step change publishes a
        new version, which the gateway takes at its next poll (on a loaded machine, after
        probes sent at once would have run under the old one)."""
        want = f"assignments v{self.api('GET', '/v1/assignments').json()['version']}:"
        deadline = time.monotonic() + timeout_s
        while True:
            ready = httpx.get(f"{self.url('gateway')}/readyz", timeout=10).json()
            if ready["checks"]["rollouts"]["reason"].startswith(want):
                return
            assert time.monotonic() < deadline, f"the gateway never took {want} {ready}"
            time.sleep(0.1)

    def in_canary(self, rollout_id: str, users: list[str]) -> set[str]:
        """The users the gateway serves in the rollout's canary arm, asked 16 at a time (one
        by one, 100 probes outlasted a 40 s step on a loaded machine)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(self.recommend, users))
        return {
            u for u, a in zip(users, answers, strict=True) if a["arms"].get(rollout_id) == "canary"
        }

    def recommend(self, user_id: str, request_id: str | None = None, **params: Any) -> Any:
        headers = {"X-Request-ID": request_id} if request_id else {}
        resp = httpx.get(f"{self.url('gateway')}/v1/recommendations",
                         params={"user_id": user_id, "k": 10, **params}, headers=headers,
                         timeout=30)  # fmt: skip
        assert resp.status_code == 200, resp.text
        return resp.json()

    @contextmanager
    def traffic(self, rate: float, seconds: float, seed: int,
                new_users: float = 0.0) -> Iterator[None]:  # fmt: skip
        """The simulator drives the gateway and the events API for the block.

        Its users are MovieLens users by default, whom the model was trained on (for never-
        seen users the tiny model is no better than chance, so "worse" would mean little)."""
        from tests.utils.simulator import data_dir

        cmd = [sys.executable, "-m", "loadtests.simulator", "--gateway", self.url("gateway"),
               "--events", self.url("events"), "--rate", str(rate), "--duration", str(seconds),
               "--seed", str(seed), "--new-users", str(new_users),
               "--data", str(data_dir())]  # fmt: skip
        log = open(self.log_dir / f"simulator-{seed}.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})  # fmt: skip
        try:
            yield
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()

    def canary_ranking(self, label: str) -> Any:
        """A second ranking process like production's (a canary deployment), for a ``with``."""
        env = dict(self.procs["ranking"].spec.env)
        env.pop("CASCADE_RANKING_PORT", None)
        return running(service_on_free_port("ranking", env, label=label), self.log_dir)

    def restart_controller(self, kill: bool = True) -> None:
        assert self.controller is not None
        if kill:
            os.kill(self.controller.pid, signal.SIGKILL)
            self.controller.popen.wait(10)
        else:
            stop(self.controller)
        self.controller = start(self.controller_spec, self.log_dir)
        wait_ready(self.controller)


def _derive_all(src: Path, root: Path, mlflow_uri: str,
                kinds: dict[str, tuple[str, ...]]) -> dict[str, str]:  # fmt: skip
    """Derive one candidate ranker per kind with the CLI, the kinds side by side (each process
    mostly imports: together they take the time of one), then register them one by one."""
    from training.candidates import register

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "OPENBLAS_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "training.candidates", "derive", "--from", str(src)]
    procs = {kind: subprocess.Popen([*run, "--kind", kind, "--out", str(root / kind), *extra],
                                    cwd=REPO, env=env, text=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
             for kind, extra in kinds.items()}  # fmt: skip
    for kind, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{kind}: {err[-2000:]}"
    return {kind: register(root / kind, "ranker", uri=mlflow_uri) for kind in kinds}


def _train_full(root: Path) -> Path:
    """The tiny training config on the whole of MovieLens-100K (about 20 s): 943 users, so a
    canary step has hundreds of users per arm, and the model knows them (the committed
    40-user subset is too small to tell a worse ranker from noise)."""
    from tests.utils.simulator import data_dir

    out = root / "models"
    cmd = [sys.executable, "-m", "training.pipeline", "--tiny", "--no-register", "--data",
           str(data_dir()), "--out", str(out), "--reports", str(root / "reports")]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def _register(models: Path, mlflow_uri: str) -> dict[str, str]:
    from training.registry import log_and_register

    parts = {p.replace("_", "-"): models / p for p in ("user_tower", "item_index", "ranker")}
    manifest = json.loads((models / "manifest.json").read_text())
    tags = {"bundle_id": manifest["bundle_id"], "feature_schema_version": "1"}
    return log_and_register(parts, [], {}, {}, tags, mlflow_uri, "production")


@pytest.fixture(scope="module")
def stack(
    registered_models: dict[str, str],
    kafka_bootstrap: str,
    mlflow_tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RolloutStack]:
    from tests.utils.simulator import data_dir

    root = tmp_path_factory.mktemp("rollouts")
    log_dir = root / "logs"
    models = _train_full(root)
    mine = _register(models, mlflow_tracking_uri)
    versions = {"original": mine[RANKER]}
    versions.update(_derive_all(models / "ranker", root, mlflow_tracking_uri, {
        "worse": (), "slower": ("--extra-ms", "200"), "bad_schema": ()}))  # fmt: skip
    rspec = infra.redis_spec(free_port(), root / "redis")
    controller_port = free_port()
    try:
        with running(rspec, log_dir):
            load_store(rspec.url, data_dir())
            env = {
                "CASCADE_REDIS_URL": rspec.url,
                "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
                "CASCADE_MLFLOW_URI": mlflow_tracking_uri,
                "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
                "CASCADE_MODEL_CACHE_DIR": str(root / "model_cache"),
                "CASCADE_MODEL_POLL_S": "1",  # aliases reach the services within a second
                "CASCADE_LATENCY_BUDGET": str(write_budget(root / "budget.yaml", 1000.0)),
                "OPENBLAS_NUM_THREADS": "1",
            }
            gateway_env = {
                "CASCADE_GATEWAY_ROLLOUTS_URL": f"http://127.0.0.1:{controller_port}",
                "CASCADE_GATEWAY_ROLLOUTS_POLL_S": "0.5",
            }
            with serving_stack(env, log_dir, gateway_env=gateway_env) as procs:
                procs["events"] = start(service_on_free_port("events", env), log_dir)
                wait_ready(procs["events"])
                scraped = ("gateway", "candidate_generation", "ranking", "reranking")
                targets = ",".join(f"{n}={procs[n].spec.url}" for n in scraped)
                controller_env = {
                    **env,
                    "CASCADE_ROLLOUTS_STATE_PATH": str(root / "state" / "rollouts.sqlite"),
                    "CASCADE_ROLLOUTS_CACHE_DIR": str(root / "candidates"),
                    "CASCADE_ROLLOUTS_SCRAPE_TARGETS": targets,
                    "CASCADE_ROLLOUTS_TICK_S": "0.5",
                    "CASCADE_ROLLOUTS_WARM_TIMEOUT_S": "60",
                    "CASCADE_ROLLOUTS_EXPERIMENT_LOOK_S": "2",
                }
                spec = service_on_free_port("rollouts", controller_env, port=controller_port)
                s = RolloutStack(procs, versions, mlflow_tracking_uri, log_dir, spec)
                s.controller = start(spec, log_dir)
                wait_ready(s.controller)
                try:
                    yield s
                finally:
                    if s.controller is not None:
                        stop(s.controller)
    finally:  # the session's other tests serve the session's bundle
        set_production(mlflow_tracking_uri, registered_models)


@pytest.fixture(autouse=True)
def no_rollout_left(stack: RolloutStack) -> Iterator[None]:
    """A test that fails mid-rollout must not leave it running for the next one."""
    yield
    for r in stack.api("GET", "/v1/rollouts?active=true").json()["rollouts"]:
        stack.api("POST", f"/v1/rollouts/{r['id']}/abort", json={"reason": "test cleanup"})
        stack.wait(r["id"], ended)
    for e in stack.api("GET", "/v1/experiments?active=true").json()["experiments"]:
        stack.api("POST", f"/v1/experiments/{e['id']}/stop", json={"reason": "test cleanup"})
    stack.set_production(stack.versions["original"])


def plan(candidate: str, *steps: dict[str, Any], **analysis: Any) -> dict[str, Any]:
    return {
        "model": "ranker", "candidate": {"ranker": candidate}, "steps": list(steps),
        "analysis": {"min_units": 50, **analysis},
    }  # fmt: skip


def shadow(share: float = 0.5, seconds: float = 8, sample: int = 20) -> dict[str, Any]:
    return {"kind": "shadow", "share": share, "duration_s": seconds, "min_sample": sample}


def canary(share: float, seconds: float, sample: int = 20, **kw: Any) -> dict[str, Any]:
    return {"kind": "canary", "share": share, "duration_s": seconds, "min_sample": sample, **kw}


def ended(status: dict[str, Any]) -> bool:
    return status["state"] in TERMINAL and status["phase"] == "done"


# ---- refusals ------------------------------------------------------------------------------
def test_refusals_name_the_reason_and_change_nothing(stack: RolloutStack) -> None:
    before = stack.aliases()
    missing = stack.api("POST", "/v1/rollouts", json=plan("99999", canary(0.1, 10)))
    assert missing.status_code == 422 and "does not exist" in missing.json()["detail"]
    broken = stack.api("POST", "/v1/rollouts", json=plan(stack.versions["bad_schema"],
                                                         canary(0.1, 10)))  # fmt: skip
    assert broken.status_code == 422
    assert "serving checks" in broken.json()["detail"] and "item_dense" in broken.json()["detail"]
    shrinking_plan = plan(stack.versions["worse"], canary(0.5, 10), canary(0.1, 10))
    shrinking = stack.api("POST", "/v1/rollouts", json=shrinking_plan)
    assert shrinking.status_code == 422 and "shares only grow" in shrinking.text
    unknown_field = stack.api("POST", "/v1/rollouts", json={**plan("2", canary(0.1, 10)),
                                                            "colour": "blue"})  # fmt: skip
    assert unknown_field.status_code == 422 and "colour" in unknown_field.text
    assert stack.aliases() == before
    first = stack.start_rollout(plan(stack.versions["worse"], canary(0.05, 600)))
    second = stack.api("POST", "/v1/rollouts", json=plan(stack.versions["slower"], canary(0.1, 10)))
    assert second.status_code == 409 and first["id"] in second.json()["detail"]
    aborted = stack.api("POST", f"/v1/rollouts/{first['id']}/abort", json={"reason": "test"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
    stack.wait(first["id"], ended)
    assert stack.aliases() == before


# ---- a worse model: shadow first (never changes the answer), then rolled back ---------------
def test_a_worse_model_is_rolled_back_and_its_shadow_changes_nothing(stack: RolloutStack) -> None:
    # the reversed ranker is decided in 40-90 s at 25-35 req/s: the step leaves room
    r = stack.start_rollout(plan(stack.versions["worse"], shadow(0.999, 10, 20),
                                 canary(0.5, 180, 50)))  # fmt: skip
    stack.wait(r["id"], lambda s: s["phase"] == "running")
    stack.wait_arm(r["id"])
    # shadowed requests answer exactly what production answers (probed before the simulated
    # traffic starts: its events move the item features between two requests)
    for i in range(5):
        user, rid = f"shadow-probe-{i}", f"probe-{i}-{r['id'][-6:]}"
        shadowed = stack.recommend(user, rid)
        assert shadowed["arms"] == {r["id"]: "production"}
        plain = stack.recommend(user, rid, variant="production")
        assert plain["arms"] == {}
        assert [it["item_id"] for it in shadowed["items"]] == [
            it["item_id"] for it in plain["items"]
        ]
        # the same scores up to what moves between two requests (freshness decays with the
        # request's clock, counters are re-read): 0.7% apart in one CI run; a leaked candidate
        # ranker (the reversed one) would change the items above and the scores by far more
        assert [it["score"] for it in shadowed["items"]] == pytest.approx(
            [it["score"] for it in plain["items"]], rel=0.02
        )
        assert shadowed["model_versions"]["ranker"].endswith("(@production)")
    with stack.traffic(rate=35, seconds=240, seed=11):
        stack.wait(r["id"], lambda s: s["step"] == 1 and s["phase"] == "running")
        shadow_pass = next(d for d in stack.history(r["id"]) if d["decision"] == "pass")
        figures = shadow_pass["figures"]["shadow"]
        assert figures["compared"] >= 20
        # the reversed ranker disagrees with production on the ranked lists
        assert figures["ranked.overlap_at_k"] < 0.5, figures
        assert figures["ranked.rbo"] < 0.5, figures
        # tau needs two shared items in the top k: reversed lists rarely have them
        assert figures.get("ranked.kendall_tau") is None or figures["ranked.kendall_tau"] < 0
        # production's exploration slots, judged for the candidate off-policy (few clicks in
        # a 10 s step: the estimate needs more, but its slots are logged and joined)
        off_policy = shadow_pass["figures"].get("off_policy")
        assert off_policy is not None and off_policy["slots"] >= 10, shadow_pass["figures"]
        assert off_policy["candidate"]["matched"] <= off_policy["slots"]
        stack.wait(r["id"], lambda s: s["state"] in TERMINAL, timeout_s=240)
        # traffic is back on production: no arm in the answers any more, within seconds
        while stack.recommend("after-rollback")["arms"]:
            time.sleep(0.05)
        back = time.time()
        final = stack.wait(r["id"], ended)
    assert final["state"] == "rolled_back", stack.history(r["id"])
    fail = next(d for d in stack.history(r["id"]) if d["decision"] == "fail")
    assert "worse than production" in fail["reasons"][0], fail
    assert back - fail["ts"] < 5, f"the gateway split traffic {back - fail['ts']:.1f} s on"
    assert "canary" not in stack.aliases() and "shadow" not in stack.aliases()


# ---- a slower model: stopped by the latency guardrail --------------------------------------
def test_a_slower_model_is_stopped_by_the_latency_guardrail(stack: RolloutStack) -> None:
    # The canary runs in its own ranking process (a canary deployment: the plan's endpoints).
    # Served by the process production uses, the slower ranker's extra CPU queues production's
    # requests as long as its own (in one CI run both p99s were 2.3 s and the step passed;
    # locally the p99s differed by 1.27x against a 1.25x limit): docs/rollouts.md.
    with stack.canary_ranking("ranking_slower") as canary_ranking:
        # only the latency guardrail judges here: the fresh canary process's first request
        # can time out (1 of its first 30 did in one CI run: a 3.3% error rate, limit +1%), and
        # on a loaded machine the slowness itself shows as timeouts (54% in one CI run)
        guard = {"min_requests": 30, "p99_min_requests": 150, "max_error_rate": 1.0,
                 "max_degraded_increase": 1.0,
                 # under two test workers production's own p99 reached 2.0 s (queueing) against
                 # the canary's 2.5 s (p50 118 vs 1,540 ms): a tighter ratio for this candidate,
                 # whose slowness the histogram test confirms on every request
                 "max_p99_ratio": 1.05, "p99_slack_ms": 0}  # fmt: skip
        r = stack.start_rollout({**plan(stack.versions["slower"], canary(0.3, 120, 10),
                                        guardrails=guard),
                                 "endpoints": {"ranking": canary_ranking.spec.url}})  # fmt: skip
        with stack.traffic(rate=12, seconds=150, seed=12):
            final = stack.wait(r["id"], ended)
    assert final["state"] == "rolled_back", stack.history(r["id"])
    fail = next(d for d in stack.history(r["id"]) if d["decision"] == "fail")
    assert "p99" in fail["reasons"][0], fail
    g = fail["figures"]["guardrails"]
    assert g["canary"]["p99_ms"] > g["production"]["p99_ms"]


# ---- a better model: promoted; users keep their arm; the controller restarts midway --------
def test_a_better_model_is_promoted_users_stay_and_a_restart_resumes(stack: RolloutStack) -> None:
    stack.set_production(stack.versions["worse"])  # production is the reversed ranker
    try:
        probes = [f"sticky-{i}" for i in range(100)]
        # Steps of a few dozen canary users show the mechanics (promotion, stickiness, the
        # restart), not non-inferiority: the default step-end rule (the interval above -10%)
        # needs thousands of users (tests/unit/test_rollout_analysis.py covers it, and
        # loadtests/rollout_decisions measures it), so this plan passes what is not worse.
        # (40 s steps: the 100 probes of a step took over 25 s under two test workers)
        r = stack.start_rollout(plan(stack.versions["original"], canary(0.1, 40, 5),
                                     canary(0.4, 40, 10), require="not_worse"))  # fmt: skip
        with stack.traffic(rate=25, seconds=150, seed=13):
            stack.wait(r["id"], lambda s: s["phase"] == "running")
            stack.wait_arm(r["id"])
            first = stack.in_canary(r["id"], probes)
            assert stack.status(r["id"])["step"] == 0, "probed across two steps: lengthen step 1"
            assert 2 <= len(first) <= 22  # 10% of 100, within 4 standard deviations
            stack.restart_controller(kill=True)  # SIGKILL mid-step: state is in SQLite
            stack.wait(r["id"], lambda s: s["step"] == 1 and s["phase"] == "running")
            stack.wait_current()  # the share of step 1 in force at the gateway
            second = stack.in_canary(r["id"], probes)
            assert stack.status(r["id"])["step"] == 1, "probed past step 1: lengthen it"
            assert first <= second, "a canary user left the canary when the share grew"
            assert 20 <= len(second) <= 60  # 40% of 100, within 4 standard deviations
            final = stack.wait(r["id"], ended)
        assert final["state"] == "promoted", stack.history(r["id"])
        assert stack.aliases()["production"] == stack.versions["original"]
        assert "canary" not in stack.aliases()
        decisions = [d["decision"] for d in stack.history(r["id"])]
        assert decisions[0] == "start" and decisions[-2:] == ["promote", "promoted"]
        answer = stack.recommend("after-promotion")
        assert answer["arms"] == {}
        assert (
            answer["model_versions"]["ranker"]
            == f"{RANKER}/{stack.versions['original']} (@production)"
        )
    finally:
        stack.set_production(stack.versions["original"])


# ---- a canary deployment that crashes --------------------------------------------------------
def test_a_crashing_canary_deployment_falls_back_and_fails(stack: RolloutStack) -> None:
    with stack.canary_ranking("ranking_canary") as canary_ranking:
        # only the error guardrail judges here (a fresh canary process is slow at first)
        guard = {"min_requests": 30, "max_p99_ratio": 100}
        r = stack.start_rollout({**plan(stack.versions["original"], canary(0.5, 90, 10),
                                        guardrails=guard),
                                 "endpoints": {"ranking": canary_ranking.spec.url}})  # fmt: skip
        with stack.traffic(rate=25, seconds=100, seed=14):
            stack.wait(r["id"], lambda s: s["phase"] == "running")
            stack.wait_arm(r["id"])
            os.kill(canary_ranking.pid, signal.SIGKILL)  # the canary's service crashes
            canary_users = [u for u in (f"crash-{i}" for i in range(60))
                            if stack.recommend(u)["arms"].get(r["id"]) == "canary"]  # fmt: skip
            assert canary_users
            for u in canary_users[:5]:
                answer = stack.recommend(u)
                assert answer["degraded"] is False, answer["degraded_reasons"]
                assert answer["model_versions"]["ranker"].endswith("(@production)")
            final = stack.wait(r["id"], ended)
    assert final["state"] == "rolled_back", stack.history(r["id"])
    fail = next(d for d in stack.history(r["id"]) if d["decision"] == "fail")
    assert "error rate" in fail["reasons"][0], fail


# ---- experiments ---------------------------------------------------------------------------
def test_interleaving_prefers_production_over_the_reversed_ranker(stack: RolloutStack) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    client.set_registered_model_alias(RANKER, "challenger", stack.versions["worse"])
    try:
        plan = {"name": "il-e2e", "layer": "rankers", "kind": "interleaving", "arms": [
            {"name": "prod", "weight": 0.5},
            {"name": "reversed", "weight": 0.5, "models": {"ranker": "challenger"}},
        ]}  # fmt: skip
        made = stack.api("POST", "/v1/experiments", json=plan)
        assert made.status_code == 201, made.text
        # the gateway applies it within a poll; the ranking service loads the alias on demand
        deadline = time.monotonic() + 60
        while True:
            answer = stack.recommend("il-probe", explain="true")
            if answer["arms"].get("il-e2e") == "interleaved" and not answer["degraded"]:
                break
            assert time.monotonic() < deadline, answer["degraded_reasons"]
            time.sleep(0.5)
        teams = [it["team"] for it in answer["items"]]
        assert set(teams) <= {"prod", "reversed"} and len(set(teams)) == 2, teams
        trace = answer["explain"]["experiments"]["interleaving"]
        assert trace["teams"] == ["prod", "reversed"]
        assert [it["team"] for it in answer["explain"]["items"]] == teams
        neutral = [it for it in answer["items"] if it.get("neutral")]
        assert all(it["team"] in {"prod", "reversed"} for it in neutral)
        # the verdict is the graded read's (the always-valid mean credit margin, from 100 users)
        with stack.traffic(rate=25, seconds=240, seed=21):
            started = time.monotonic()
            look = wait_for_look(stack, "il-e2e", lambda f: f.get("winner"), timeout_s=240)
        elapsed = time.monotonic() - started
        keys = ("winner", "users", "graded", "test", "preferences", "credited_clicks")
        shown = json.dumps({k: look.get(k) for k in (*keys, "neutral_clicks")})
        log.info("interleaving verdict %.0f s into the traffic: %s", elapsed, shown)
        assert look["winner"] == look["graded"]["winner"] == "prod", look
        assert look["graded"]["mean_margin"] < 0 and look["graded"]["ci_high"] < 0
        assert look["test"]["winner"] in (None, "prod"), look  # the sign test, if decided yet
        assert look["preferences"]["prod"] > look["preferences"]["reversed"]
        assert look["credited_clicks"]["prod"] > look["credited_clicks"]["reversed"]
        page = stack.api("GET", "/v1/experiments/il-e2e/report")
        assert page.status_code == 200 and page.text.count("<svg") == 2
        assert "graded read (the verdict): winner <b>prod</b>" in page.text
    finally:
        stack.api("POST", "/v1/experiments/il-e2e/stop", json={"reason": "done"})
        client.delete_registered_model_alias(RANKER, "challenger")


def test_an_ab_experiment_keeps_its_users_and_is_analysed(stack: RolloutStack) -> None:
    import redis

    arms = [{"name": "control", "weight": 0.5},
            {"name": "diverse", "weight": 0.5, "variant": "diverse"}]  # fmt: skip
    plan = {"name": "diverse-e2e", "layer": "ui", "arms": arms}
    made = stack.api("POST", "/v1/experiments", json=plan)
    assert made.status_code == 201, made.text
    probes = [f"ab-{i}" for i in range(40)]
    deadline = time.monotonic() + 10
    while "diverse-e2e" not in stack.recommend("ab-probe")["arms"]:
        assert time.monotonic() < deadline, "the gateway never applied the experiment"
        time.sleep(0.2)
    first = {u: stack.recommend(u)["arms"]["diverse-e2e"] for u in probes}
    assert set(first.values()) == {"control", "diverse"}
    store = redis.Redis.from_url(stack.procs["gateway"].spec.env["CASCADE_REDIS_URL"])
    time.sleep(0.5)  # the arms are written after the answers
    for u in probes[:5]:  # remembered with the user's state
        assert store.hget(f"{{u:{u}}}:arms", "diverse-e2e") == first[u].encode()
    moved = stack.api("PATCH", "/v1/experiments/diverse-e2e/weights",
                      json={"weights": {"control": 0.1, "diverse": 0.9}})  # fmt: skip
    assert moved.status_code == 200, moved.text
    time.sleep(1.5)  # a poll or two
    assert {u: stack.recommend(u)["arms"]["diverse-e2e"] for u in probes} == first
    with stack.traffic(rate=25, seconds=60, seed=22):
        look = wait_for_look(
            stack, "diverse-e2e", lambda f: min(a["users"] for a in f["arms"].values()) >= 30
        )
    # users assigned before the change keep 50/50, later ones 10/90: no single ratio to test
    assert look["srm"]["checked"] is False and "weights changed" in look["srm"]["reason"]
    row = look["comparisons"]["diverse"]["clicks_per_user"]
    assert row["control"] is not None and row["treatment"] is not None
    stopped = stack.api("POST", "/v1/experiments/diverse-e2e/stop", json={"reason": "done"})
    assert stopped.status_code == 200
    deadline = time.monotonic() + 10
    while "diverse-e2e" in stack.recommend("ab-probe")["arms"]:
        assert time.monotonic() < deadline, "a stopped experiment still assigns users"
        time.sleep(0.2)


def wait_for_look(stack: RolloutStack, experiment_id: str, until: Any,
                  timeout_s: float = 150.0) -> dict[str, Any]:  # fmt: skip
    """Poll the experiment's analysis until ``until(figures)`` holds; its last look."""
    deadline = time.monotonic() + timeout_s
    latest = None
    while time.monotonic() < deadline:
        body = stack.api("GET", f"/v1/experiments/{experiment_id}/analysis?looks=1").json()
        latest = body["latest"]
        if latest is not None and until(latest["figures"]):
            figures: dict[str, Any] = latest["figures"]
            return figures
        time.sleep(1.0)
    pytest.fail(f"{experiment_id}: no look satisfied the test in {timeout_s:.0f} s: {latest}")
