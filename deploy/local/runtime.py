"""The local runtime: start the stack in order, remember what runs, stop all of it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local import infra
from deploy.local.processes import (
    ProcessSpec,
    RunningProcess,
    StartupError,
    group_alive,
    start,
    stop_group,
    tail,
    wait_ready,
)
from deploy.local.stack import (
    REPO_ROOT,
    Infra,
    RuntimeSettings,
    plan_infra,
    platform_env,
    prometheus_config,
    service_specs,
)
from shared.models.digest import DIGEST_TAG
from shared.models.locators import registered_name
from shared.models.registry import ModelNotFoundError, RegistryUnavailableError, version_tags

STATE_FILE = "state.json"


class StackError(RuntimeError):
    """The stack could not start; the message names the part and points at its log."""


@dataclass(frozen=True)
class Job:
    """A step that runs to completion before the services start (training, bootstrap)."""

    name: str
    argv: list[str]
    skip_reason: str = ""


def read_state(run_dir: Path) -> dict[str, Any]:
    """What a previous ``up`` recorded, or {} when nothing runs."""
    path = run_dir / STATE_FILE
    if not path.exists():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data


MODEL_PARTS = ("user_tower", "item_index", "ranker")


def train_skip_reason(models: Path, mlflow_uri: str) -> str:
    """Why training can be skipped ("" when it must run).

    The services load what the registry's ``production`` alias names, so a bundle on disk is not
    enough: a fresh registry (say ``.run/`` was removed) needs the models registered again.
    """
    if not (models / "manifest.json").exists():
        return ""
    try:
        for part in MODEL_PARTS:
            if DIGEST_TAG not in version_tags(registered_name(part), "production", mlflow_uri):
                return ""  # registered before digests were recorded: serving would refuse it
    except (ModelNotFoundError, RegistryUnavailableError):
        return ""
    return f"models found in {models} and registered at {mlflow_uri}"


def model_jobs(rt: RuntimeSettings, mlflow_uri: str) -> list[Job]:
    """Fetch the data, train (only when no registered model exists yet), load Redis."""
    models = rt.models_dir
    train = [
        sys.executable, "-m", "training.pipeline", "--out", str(models),
        "--reports", str(rt.reports_dir),
    ]  # fmt: skip
    if rt.tiny:
        train.append("--tiny")
    bootstrap = [
        sys.executable,
        "-m",
        "services.feature_store.bootstrap",
        "--data",
        str(rt.data_dir / "ml-100k"),
    ]
    fetch = [sys.executable, "-m", "training.data.fetch", "--dest", str(rt.data_dir / "ml-100k")]
    return [
        Job("data", fetch),
        Job("train", train, train_skip_reason(models, mlflow_uri)),
        Job("bootstrap", bootstrap),
    ]


class LocalRuntime:
    """Starts infrastructure, jobs and services; records process groups in .run/state.json."""

    def __init__(self, rt: RuntimeSettings, out: Callable[[str], None]) -> None:
        self.rt = rt
        self.out = out
        self.log_dir = rt.run_dir / "logs"
        self.running: list[RunningProcess] = []
        self.infra: Infra | None = None

    def up(self) -> None:
        """Start everything and wait until each part is ready; raise StackError otherwise."""
        if any(group_alive(p["pid"]) for p in read_state(self.rt.run_dir).get("processes", [])):
            raise StackError("the stack is already running: `make down` first (or `make status`)")
        try:
            names = self.rt.services()
        except ValueError as exc:
            raise StackError(str(exc)) from exc
        self.rt.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.infra = plan_infra(self.rt)
        except infra.MissingBinaryError as exc:
            raise StackError(str(exc)) from exc
        for spec in self.infra.start:
            self._start_and_wait(spec)
        env = platform_env(self.infra, self.rt.run_dir, self.rt.protect_reads)
        for job in model_jobs(self.rt, self.infra.mlflow_uri):
            self._run_job(job, env)
        # A Redis that loses its data is re-bootstrapped by the feature store (docs/faults.md).
        env["CASCADE_FEATURE_STORE_BOOTSTRAP_DATA"] = str(self.rt.data_dir / "ml-100k")
        specs = service_specs(env, names)
        for spec in specs:
            self._launch(spec)
        for proc in self.running[len(self.infra.start) :]:
            self._wait(proc)
        self._start_prometheus({s.name: s.url for s in specs})
        self._write_state()

    def _launch(self, spec: ProcessSpec) -> RunningProcess:
        self.out(f"starting {spec.name} ...")
        proc = start(spec, self.log_dir)
        self.running.append(proc)
        self._write_state()
        return proc

    def _wait(self, proc: RunningProcess) -> None:
        proc.spec.ready_timeout_s = self.rt.ready_timeout_s
        try:
            wait_ready(proc)
        except StartupError as exc:
            raise StackError(str(exc)) from exc
        self.out(f"  {proc.spec.name} ready at {proc.spec.url}")

    def _start_and_wait(self, spec: ProcessSpec) -> None:
        self._wait(self._launch(spec))

    def _run_job(self, job: Job, env: dict[str, str]) -> None:
        if job.skip_reason:
            self.out(f"{job.name}: skipped ({job.skip_reason})")
            return
        self.out(
            f"{job.name}: running {' '.join(job.argv[1:])} (log {self.log_dir}/{job.name}.log)"
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{job.name}.log"
        with open(log_path, "ab") as log_file:
            # Progress bars go to the terminal; everything else to the log.
            rc = subprocess.call(
                job.argv, cwd=REPO_ROOT, env={**_base_env(), **env}, stdout=log_file
            )
        if rc != 0:
            raise StackError(f"{job.name} failed (exit {rc}); log {log_path}:\n{tail(log_path)}")

    def _start_prometheus(self, targets: dict[str, str]) -> None:
        config = prometheus_config(targets, self.rt.run_dir / "prometheus.yml")
        spec = infra.prometheus_spec(self.rt.prometheus_port, config, self.rt.run_dir / "prom")
        if spec is None:
            self.out(
                "prometheus: not installed (apt-get install prometheus); /metrics still served"
            )
            return
        self._start_and_wait(spec)

    def _write_state(self) -> None:
        state = {
            "processes": [
                {"name": p.spec.name, "pid": p.pid, "url": p.spec.url, "log": str(p.log_path)}
                for p in self.running
            ]
        }
        (self.rt.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    def check_exits(self) -> list[str]:
        """Lines about processes that died since the last call."""
        lines = []
        for proc in self.running:
            if not proc.alive() and not getattr(proc, "_reported", False):
                proc._reported = True  # type: ignore[attr-defined]
                lines.append(
                    f"{proc.spec.name} exited ({proc.popen.returncode}); see {proc.log_path}"
                )
        return lines

    def down(self) -> int:
        """Stop every recorded process group, last started first. Returns how many."""
        recorded = read_state(self.rt.run_dir).get("processes", [])
        pids = [p["pid"] for p in recorded] or [p.pid for p in self.running]
        stopped = 0
        for pid in reversed(pids):
            if group_alive(pid):
                stop_group(pid)
                stopped += 1
        for proc in self.running:
            proc.popen.poll()
        (self.rt.run_dir / STATE_FILE).unlink(missing_ok=True)
        return stopped

    def table(self, state: dict[str, Any] | None = None) -> str:
        """What runs where, one line each."""
        rows = (state or {"processes": []}).get("processes") or [
            {"name": p.spec.name, "pid": p.pid, "url": p.spec.url, "log": str(p.log_path)}
            for p in self.running
        ]
        lines = [f"{'component':<22}{'pid':>8}  {'status':<8}{'address':<32}log"]
        for row in rows:
            status = "up" if group_alive(row["pid"]) else "DOWN"
            lines.append(
                f"{row['name']:<22}{row['pid']:>8}  {status:<8}{row['url']:<32}{row['log']}"
            )
        gateway = next((r["url"] for r in rows if r["name"] == "gateway"), "")
        if gateway:
            lines.append(f"\ntry: curl '{gateway}/v1/recommendations?user_id=1&k=10&explain=true'")
            lines.append(f"metrics: {gateway}/metrics (every service serves /metrics)")
        console = next((r["url"] for r in rows if r["name"] == "console"), "")
        if console:
            lines.append(f"console: {console} (try a user, health, rollouts, latency)")
        lines.append(
            f"admin token (writes: catalog, rollouts, experiments): {self.rt.run_dir}/admin_token"
        )
        if self.rt.protect_reads:
            lines.append(
                f"read token (every read but health and metrics): {self.rt.run_dir}/read_token"
            )
        lines.append(f"logs: {self.log_dir}")
        return "\n".join(lines)


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)
