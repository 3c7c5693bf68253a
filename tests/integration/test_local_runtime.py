"""The local runtime (`make up` / `make down`): everything starts, reports ready, serves a whole
recommendation, and stops without leaving a process behind (via `down` and via Ctrl-C).

The first test reuses the session's Redis and MLflow (the "already running elsewhere" path) and
starts its own broker; the second starts its own Redis and broker, finds the models registered
by the first (so it skips training), and is stopped with SIGINT as a user's Ctrl-C would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from deploy.local.processes import free_port, group_alive
from deploy.local.stack import SERVICES
from tests.integration.serving_fixtures import set_production, write_budget
from tests.utils.servers import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def production_put_back(
    registered_models: dict[str, str], mlflow_tracking_uri: str
) -> Iterator[None]:
    """`up` registers its own bundle in the session's MLflow as production: put the session's
    back afterwards, for the modules that serve it."""
    yield
    set_production(mlflow_tracking_uri, registered_models)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for the module: the first `up` trains into it, the second reuses it."""
    return tmp_path_factory.mktemp("runtime") / "models"


def _env(run_dir: Path, models_dir: Path, **platform: str) -> tuple[dict[str, str], dict[str, int]]:
    """A clean environment with private ports; ``platform`` names external servers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CASCADE_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(
        {
            "CASCADE_LOCAL_RUN_DIR": str(run_dir),
            "CASCADE_LOCAL_MODELS_DIR": str(models_dir),
            "CASCADE_LOCAL_REPORTS_DIR": str(run_dir / "reports"),  # not the checkout's reports/
            "CASCADE_LOCAL_REDIS_PORT": str(free_port()),
            "CASCADE_LOCAL_KAFKA_PORT": str(free_port()),
            "CASCADE_LOCAL_MLFLOW_PORT": str(free_port()),
            "CASCADE_LOCAL_PROMETHEUS_PORT": str(free_port()),
            # Tansu joins a consumer group in about half the session timeout.
            "CASCADE_INGEST_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_INGEST_HEARTBEAT_INTERVAL_MS": "2000",
            "CASCADE_OFFLINE_SINK_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_OFFLINE_SINK_HEARTBEAT_INTERVAL_MS": "2000",
            "CASCADE_OFFLINE_SINK_DATA_DIR": str(run_dir / "events"),
            # Functional checks, not a speed test: a loaded CI machine must not trip deadlines.
            "CASCADE_LATENCY_BUDGET": str(write_budget(tmp_budget(run_dir), stage_ms=5000.0)),
        }
    )
    env.update({f"CASCADE_{k.upper()}": v for k, v in platform.items()})
    ports = {name: free_port() for name in SERVICES}
    env.update({f"CASCADE_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    return env, ports


def tmp_budget(run_dir: Path) -> Path:
    """Where the test's latency budget file goes (beside the run folder)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir / "latency_budget.yaml"


def _runtime(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.local", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _recommend_until_whole(
    gateway: str, headers: dict[str, str] | None = None, timeout_s: float = 20.0
) -> dict[str, Any]:
    """A recommendation through every stage (the first calls may still warm connections up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        params = {"user_id": "1", "k": 5}
        rec = httpx.get(f"{gateway}/v1/recommendations", params=params, headers=headers)
        assert rec.status_code == 200, rec.text
        body: dict[str, Any] = rec.json()
        if not body["degraded"] or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def _check_serving(ports: dict[str, int], headers: dict[str, str] | None = None) -> None:
    for name, port in ports.items():
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, (name, ready.text)
    body = _recommend_until_whole(f"http://127.0.0.1:{ports['gateway']}", headers)
    assert len(body["items"]) == 5 and not body["degraded"], body["degraded_reasons"]


def _check_prometheus_scrapes(port: str, ports: dict[str, int], timeout_s: float = 30.0) -> None:
    """Prometheus (installed by `make bootstrap`) scrapes every service and finds it up."""
    deadline = time.monotonic() + timeout_s
    while True:
        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()
        health = {t["labels"]["job"]: t["health"] for t in targets["data"]["activeTargets"]}
        if all(health.get(name) == "up" for name in ports) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert health == dict.fromkeys(ports, "up"), health


def _assert_all_gone(processes: list[dict[str, Any]]) -> None:
    leftovers = [p for p in processes if group_alive(p["pid"])]
    assert not leftovers, f"still running after stop: {leftovers}"


def test_up_with_external_redis_and_mlflow_then_down(
    tmp_path: Path, models_dir: Path, redis_url: str, mlflow_tracking_uri: str
) -> None:
    run_dir = tmp_path / "run"
    own_db = redis_url.rsplit("/", 1)[0] + "/7"  # a database no other test flushes
    env, ports = _env(run_dir, models_dir, redis_url=own_db, mlflow_uri=mlflow_tracking_uri)
    state: dict[str, Any] = {"processes": []}
    try:
        up = _runtime(["up", "--detach", "--tiny"], env, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((run_dir / "state.json").read_text())
        names = {p["name"] for p in state["processes"]}
        assert {"kafka", *SERVICES} <= names
        assert not {"redis", "mlflow"} & names, "started its own although one was given"
        assert "train: running" in up.stdout
        assert (run_dir / "reports" / "evaluation.md").is_file()  # where it was told to write
        _check_serving(ports)
        assert str(ports["gateway"]) in up.stdout
        status = _runtime(["status"], env, timeout=60)
        assert status.returncode == 0 and "DOWN" not in status.stdout
    finally:
        down = _runtime(["down"], env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not (run_dir / "state.json").exists()
    _assert_all_gone(state["processes"])
    external = redis.Redis.from_url(own_db)
    assert external.ping() and external.dbsize() > 0, "the given Redis was not used or was stopped"


def _foreground_up(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """``deploy.local up`` in the foreground, read until it says it is up (asserted)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.local", "up"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        if "Ctrl-C stops everything" in line or "start failed" in line:
            break
    if "Ctrl-C stops everything" not in "".join(out):
        proc.kill()
        proc.wait(30)
        raise AssertionError("".join(out))
    return proc, out


def test_foreground_up_stops_everything_on_ctrl_c(
    tmp_path: Path, models_dir: Path, mlflow_tracking_uri: str
) -> None:
    """With reads protected (CASCADE_LOCAL_PROTECT_READS): the stages, the console and the
    rollout follower pass the read token among themselves, probes and Prometheus need none."""
    run_dir = tmp_path / "run"
    env, ports = _env(run_dir, models_dir, mlflow_uri=mlflow_tracking_uri)
    env["CASCADE_LOCAL_PROTECT_READS"] = "true"
    proc, out = _foreground_up(env)
    try:
        assert any(line.startswith("train: skipped") for line in out), "".join(out)
        assert any(f"read token (every read but health and metrics): {run_dir}/read_token" in line
                   for line in out), "".join(out)  # fmt: skip
        state = json.loads((run_dir / "state.json").read_text())
        assert {"redis", "kafka", "prometheus", *SERVICES} <= {
            p["name"] for p in state["processes"]
        }
        gateway = f"http://127.0.0.1:{ports['gateway']}/v1/recommendations?user_id=1"
        assert httpx.get(gateway, timeout=10).status_code == 401
        token = (run_dir / "read_token").read_text().strip()
        _check_serving(ports, {"Authorization": f"Bearer {token}"})
        _check_prometheus_scrapes(env["CASCADE_LOCAL_PROMETHEUS_PORT"], ports)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(out) + rest
    assert "stopped" in rest
    assert not (run_dir / "state.json").exists()
    _assert_all_gone(state["processes"])


def test_foreground_up_returns_when_down_runs_elsewhere(
    tmp_path: Path, models_dir: Path, mlflow_tracking_uri: str
) -> None:
    run_dir = tmp_path / "run"
    env, _ports = _env(run_dir, models_dir, mlflow_uri=mlflow_tracking_uri)
    env["CASCADE_LOCAL_ONLY"] = "filtering,events"  # what it starts does not matter here
    proc, out = _foreground_up(env)
    try:
        state = json.loads((run_dir / "state.json").read_text())
        started = {p["name"] for p in state["processes"]}
        assert {"filtering", "events"} <= started and not {"gateway", "ranking"} & started
        down = _runtime(["down"], env, timeout=60)  # `make down` in another terminal
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
        rest, _ = proc.communicate(timeout=60)  # returns by itself: no Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(out) + rest
    assert "everything it started has stopped" in rest, rest
    _assert_all_gone(state["processes"])


def test_only_names_a_known_service(tmp_path: Path, models_dir: Path) -> None:
    env, _ = _env(tmp_path / "run", models_dir)
    env["CASCADE_LOCAL_ONLY"] = "filtering,gatway"
    up = _runtime(["up", "--detach"], env, timeout=60)
    assert up.returncode != 0 and "gatway" in up.stdout + up.stderr
    assert not (tmp_path / "run" / "state.json").exists()
