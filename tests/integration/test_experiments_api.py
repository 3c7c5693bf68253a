"""Experiments over HTTP, on the real rollout controller process and the session's MLflow.

The controller runs alone (no serving stack: what is checked here is what it decides and
publishes): the tiny trained bundle is registered in MLflow, with an extra alias on the
ranker for the experiments' challenger arm. Shown: an experiment appears in
``/v1/assignments`` with its range and resolved arms, a weights change keeps the range, a stop
takes it out; refusals say why and change nothing; the ranker cannot be both rolled out and
experimented on; a declared file is applied once; a killed controller keeps its experiments.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.processes import RunningProcess, start, stop, wait_ready
from deploy.local.stack import service_on_free_port

pytestmark = pytest.mark.integration
RANKER = "cascade-ranker"
CHALLENGER = "exp-challenger"  # an alias this module sets on the ranker (removed after)
TOKEN = "experiments-admin-token"
DECLARED = """
experiments:
  - name: declared-explore
    layer: declared
    traffic: 0.25
    arms:
      - {name: control, weight: 0.5}
      - {name: explore, weight: 0.5, variant: explore}
"""


@dataclass
class Running:
    """The controller process and how to talk to it."""

    proc: RunningProcess
    log_dir: Path

    def api(self, method: str, path: str, auth: bool = True, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {TOKEN}"} if auth else {}
        return httpx.request(
            method, f"{self.proc.spec.url}{path}", headers=headers, timeout=60, **kw
        )

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.api("POST", "/v1/experiments", json=body)
        assert resp.status_code == 201, resp.text
        created: dict[str, Any] = resp.json()
        return created

    def assignments(self) -> dict[str, Any]:
        resp = self.api("GET", "/v1/assignments", auth=False)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def published(self) -> dict[str, dict[str, Any]]:
        return {e["experiment_id"]: e for e in self.assignments()["experiments"]}

    def restart(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)  # no clean shutdown: state is in SQLite
        self.proc.popen.wait(10)
        self.proc = start(self.proc.spec, self.log_dir)
        wait_ready(self.proc)


def _alias(mlflow_uri: str, version: str | None) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    if version is None:
        client.delete_registered_model_alias(RANKER, CHALLENGER)
    else:
        client.set_registered_model_alias(RANKER, CHALLENGER, version)


@pytest.fixture(scope="module")
def controller(
    registered_models: dict[str, str],
    mlflow_tracking_uri: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("experiments")
    (root / "experiments.yaml").write_text(DECLARED)
    _alias(mlflow_tracking_uri, registered_models[RANKER])
    env = {
        "CASCADE_MLFLOW_URI": mlflow_tracking_uri,
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
        "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CASCADE_ROLLOUTS_STATE_PATH": str(root / "state" / "rollouts.sqlite"),
        "CASCADE_ROLLOUTS_CACHE_DIR": str(root / "candidates"),
        "CASCADE_ROLLOUTS_EXPERIMENTS_FILE": str(root / "experiments.yaml"),
        "CASCADE_ROLLOUTS_ADMIN_TOKEN": TOKEN,
        "CASCADE_ROLLOUTS_TICK_S": "0.3",
        # No serving stack: a rollout started here only warms (and is aborted), and must
        # not scrape whatever else runs on this host's default ports.
        "CASCADE_ROLLOUTS_SCRAPE_TARGETS": "gateway=http://127.0.0.1:9",
        "OPENBLAS_NUM_THREADS": "1",
    }
    proc = start(service_on_free_port("rollouts", env), root / "logs")
    running = Running(proc, root / "logs")
    try:
        wait_ready(proc)
        yield running
    finally:
        stop(running.proc)
        _alias(mlflow_tracking_uri, None)


@pytest.fixture(autouse=True)
def nothing_left_running(controller: Running) -> Iterator[None]:
    """A test's experiments and rollouts do not outlive it (the declared one is the first
    test's to look at, then stopped like the others)."""
    yield
    for e in controller.api("GET", "/v1/experiments?active=true").json()["experiments"]:
        controller.api("POST", f"/v1/experiments/{e['id']}/stop", json={"reason": "cleanup"})
    for r in controller.api("GET", "/v1/rollouts?active=true").json()["rollouts"]:
        controller.api("POST", f"/v1/rollouts/{r['id']}/abort", json={"reason": "cleanup"})


def until(check: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return got


def arm(name: str, weight: float = 0.5, **changes: Any) -> dict[str, Any]:
    return {"name": name, "weight": weight, **changes}


def test_an_experiment_is_published_reweighted_and_stopped(controller: Running) -> None:
    declared = until(lambda: controller.published().get("declared-explore"))
    assert declared["range"] == [0.0, 0.25]
    assert declared["arms"][1]["knobs"] == {"exploration": {"slots": 2, "pool": 50}}
    before = controller.assignments()["version"]
    body = {
        "name": "diversity",
        "layer": "reranking",
        "traffic": 0.4,
        "arms": [arm("control"), arm("diverse", variant="diverse")],
    }
    denied = controller.api("POST", "/v1/experiments", auth=False, json=body)
    assert denied.status_code == 401
    created = controller.create(body)
    assert created["state"] == "running" and created["range"] == [0.0, 0.4]
    published = controller.published()["diversity"]
    assert controller.assignments()["version"] > before
    assert (published["layer"], published["salt"], published["range"]) == (
        "reranking",
        "diversity",
        [0.0, 0.4],
    )
    assert published["arms"][1]["knobs"] == {"mmr": {"lambda": 0.5, "genre_cap": 3}}
    assert "variant" not in published["arms"][1], "the gateway gets the resolved arm"

    version = controller.assignments()["version"]
    patched = controller.api(
        "PATCH",
        "/v1/experiments/diversity/weights",
        json={"weights": {"control": 0.2, "diverse": 0.8}},
    )
    assert patched.status_code == 200, patched.text
    reweighted = controller.published()["diversity"]
    assert [a["weight"] for a in reweighted["arms"]] == [0.2, 0.8]
    assert reweighted["range"] == [0.0, 0.4] and controller.assignments()["version"] > version

    stopped = controller.api("POST", "/v1/experiments/diversity/stop", json={"reason": "done"})
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert "diversity" not in controller.published()
    history = controller.api("GET", "/v1/experiments/diversity/history").json()["decisions"]
    assert [d["decision"] for d in history] == ["created", "started", "weights_changed", "stopped"]
    assert history[-1]["reasons"] == ["stopped by hand: done"]


REFUSED = [
    ({"arms": [arm("a"), arm("b", 0.4)]}, 422, "weights sum to 0.9"),
    ({"arms": [arm("a"), arm("b", variant="nope")]}, 422, "arms[1].variant: no variant 'nope'"),
    ({"arms": [arm("a"), arm("b", models={"rankr": "x"})]}, 422, "models.rankr is not a model"),
    ({"arms": [arm("a"), arm("b", knobs={"mmr": {"lambda": 7}})]}, 422, "arms[1].knobs.mmr"),
    ({"arms": [arm("a"), arm("b", knobs={"nope": {"x": 1}})]}, 422, "no component 'nope'"),
    (
        {"arms": [arm("a"), arm("b", models={"ranker": "absent"})]},
        422,
        "cascade-ranker has no alias @absent",
    ),
    (
        {
            "kind": "interleaving",
            "arms": [
                arm("a"),
                arm("b", knobs={"mmr": {"lambda": 0.2}}, models={"ranker": CHALLENGER}),
            ],
        },
        422,
        "differ in models.ranker only",
    ),
    (
        {"kind": "interleaving", "arms": [arm("a", 0.4), arm("b", 0.3), arm("c", 0.3)]},
        422,
        "exactly two arms",
    ),
    ({"arms": [arm("a"), arm("b")], "stop_at": 1000.0}, 422, "stop_at 1000.0 is in the past"),
    ({"arms": [arm("a"), arm("b")], "colour": "blue"}, 422, "colour"),
    (
        {"arms": [arm("a"), arm("b")], "layer": "full", "traffic": 0.5},
        409,
        "layer full: running experiments take 0.7 (holder 0.7)",
    ),
    (
        {"name": "holder", "arms": [arm("a"), arm("b")], "layer": "elsewhere"},
        409,
        "experiment holder already exists",
    ),
]


def test_refusals_say_why_and_change_nothing(controller: Running) -> None:
    controller.create(
        {"name": "holder", "layer": "full", "traffic": 0.7, "arms": [arm("a"), arm("b")]}
    )
    before, listed = controller.assignments(), controller.api("GET", "/v1/experiments").json()
    for body, status, says in REFUSED:
        resp = controller.api("POST", "/v1/experiments", json={"name": "refused", **body})
        assert resp.status_code == status and says in resp.text, (body, resp.text)
    assert controller.assignments() == before
    assert controller.api("GET", "/v1/experiments").json() == listed
    assert controller.api("GET", "/v1/experiments/refused").status_code == 404
    bad_weights = controller.api(
        "PATCH", "/v1/experiments/holder/weights", json={"weights": {"a": 0.9, "b": 0.9}}
    )
    assert bad_weights.status_code == 422 and "weights sum to 1.8" in bad_weights.text


def test_the_ranker_is_either_rolled_out_or_experimented_on(
    controller: Running, registered_models: dict[str, str]
) -> None:
    ranker_ab = {
        "name": "ranker-ab",
        "layer": "ranking",
        "arms": [arm("production"), arm("challenger", models={"ranker": CHALLENGER})],
    }
    controller.create(ranker_ab)
    rollout = {
        "model": "ranker",
        "candidate": {"ranker": registered_models[RANKER]},
        "steps": [{"kind": "canary", "share": 0.1, "duration_s": 600}],
    }
    refused = controller.api("POST", "/v1/rollouts", json=rollout)
    assert refused.status_code == 409 and "running experiment ranker-ab" in refused.text
    controller.api("POST", "/v1/experiments/ranker-ab/stop")

    started = controller.api("POST", "/v1/rollouts", json=rollout)
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    interleaving = {
        "name": "ranker-il",
        "kind": "interleaving",
        "layer": "ranking",
        "arms": ranker_ab["arms"],
    }
    blocked = controller.api("POST", "/v1/experiments", json=interleaving)
    assert blocked.status_code == 409 and f"rolled out by rollout {rollout_id}" in blocked.text
    aborted = controller.api("POST", f"/v1/rollouts/{rollout_id}/abort", json={"reason": "test"})
    assert aborted.status_code == 200
    created = controller.create(interleaving)
    assert created["kind"] == "interleaving"
    assert controller.published()["ranker-il"]["arms"][1]["models"] == {"ranker": CHALLENGER}


def test_a_restarted_controller_keeps_running_experiments(controller: Running) -> None:
    controller.create(
        {
            "name": "survivor",
            "layer": "reranking",
            "traffic": 0.3,
            "arms": [arm("control"), arm("diverse", variant="diverse")],
        }
    )
    before = controller.published()
    controller.restart()
    after = controller.published()
    assert after == before and after["survivor"]["range"] == [0.0, 0.3]
    time.sleep(1.0)  # a few ticks: the declared file is read again
    declared = controller.api("GET", "/v1/experiments/declared-explore/history").json()
    assert [d["decision"] for d in declared["decisions"]] == ["created", "started", "stopped"], (
        "a declared experiment stopped by hand is not created again"
    )
    assert "declared-explore" not in controller.published()


def test_the_cli_drives_the_same_api(
    controller: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.rollouts.cli import main

    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: cli-ab\nlayer: cli\ntraffic: 0.2\narms:\n"
        "  - {name: control, weight: 0.5}\n  - {name: diverse, weight: 0.5, variant: diverse}\n"
    )
    url = ["--url", controller.proc.spec.url, "--token", TOKEN]
    assert main([*url, "experiment", "start", "--file", str(plan)]) == 0
    assert "cli-ab  ab in layer cli: 0.2 of its users, running, [0, 0.2)" in capsys.readouterr().out
    assert main([*url, "experiment", "weights", "cli-ab", "control=0.3,diverse=0.7"]) == 0
    assert main([*url, "experiment", "weights", "cli-ab", "control=0.3,diverse=0.8"]) == 1
    assert "weights sum to 1.1" in capsys.readouterr().err
    assert main([*url, "experiment", "list"]) == 0
    assert "control          0.3" in capsys.readouterr().out
    assert main([*url, "experiment", "stop", "cli-ab", "--reason", "cli test"]) == 0
    assert main([*url, "experiment", "status", "cli-ab"]) == 0
    out = capsys.readouterr().out
    assert "stopped: stopped by hand: cli test" in out and "weights_changed" in out


def test_the_rollout_cli_starts_shows_refuses_and_aborts(
    controller: Running, registered_models: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from services.rollouts.cli import main

    url = ["--url", controller.proc.spec.url, "--token", TOKEN]
    version = registered_models[RANKER]
    start = ["start", "--model", "ranker", "--candidate", f"ranker={version}",
             "--steps", "canary:0.1:600:50"]  # fmt: skip
    assert main([*url, "--json", *start]) == 0
    started = json.loads(capsys.readouterr().out)
    rollout_id = started["id"]
    assert started["plan"]["steps"] == [
        {**started["plan"]["steps"][0], "kind": "canary", "share": 0.1, "duration_s": 600.0,
         "min_sample": 50}
    ]  # fmt: skip
    assert main([*url, "status", rollout_id]) == 0
    assert rollout_id in capsys.readouterr().out
    assert main([*url, "resume", rollout_id]) == 1  # not holding: refused with the reason
    assert "not holding" in capsys.readouterr().err
    assert main([*url, "start", "--model", "ranker", "--candidate", f"ranker={version}"]) == 1
    assert "already" in capsys.readouterr().err  # a second rollout of the same model
    assert main([*url, "abort", rollout_id, "--reason", "cli test"]) == 0
    assert "aborted" in capsys.readouterr().out
    assert main([*url, "--json", "history", rollout_id]) == 0
    decisions = json.loads(capsys.readouterr().out)["decisions"]
    assert decisions[0]["decision"] == "start"
    assert decisions[-1]["decision"] == "abort" and "cli test" in decisions[-1]["reasons"][0]
