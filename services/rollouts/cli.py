"""The rollout CLI: `python -m services.rollouts.cli start|status|history|promote|resume|abort`,
and `... experiment start|list|status|stop|weights` for experiments (docs/experiments.md).

It talks to the controller's HTTP API (``--url``, default $CASCADE_ROLLOUTS_URL or the local
controller) and prints what it answered; a refusal prints the controller's reason and exits 1.

    python -m services.rollouts.cli start --model ranker --candidate ranker=7
    python -m services.rollouts.cli start --model ranker --latest \
        --steps shadow:0.2:300,canary:0.05:600
    python -m services.rollouts.cli start --plan my-plan.yaml
    python -m services.rollouts.cli status [ROLLOUT_ID]
    python -m services.rollouts.cli history ROLLOUT_ID
    python -m services.rollouts.cli promote|resume|abort ROLLOUT_ID [--reason "..."]
    python -m services.rollouts.cli experiment start --file experiment.yaml
    python -m services.rollouts.cli experiment list [--all]
    python -m services.rollouts.cli experiment status EXPERIMENT_ID
    python -m services.rollouts.cli experiment stop EXPERIMENT_ID [--reason "..."]
    python -m services.rollouts.cli experiment weights EXPERIMENT_ID control=0.3,diverse=0.7
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from services.rollouts.experiments import sizing
from services.rollouts.plan import PARTS_OF
from shared.platform.auth import client_token

DEFAULT_URL = "http://127.0.0.1:8009"


class ApiError(Exception):
    """The controller refused or could not be reached; the message is what to print."""


def call(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """One request to the controller; its JSON answer, or ApiError with its reason (a read
    without ``token`` carries the read token, where one is found)."""
    token = token or (client_token("read") if method == "GET" else None)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            detail = json.loads(raw).get("detail", raw.decode())
        except (ValueError, AttributeError):
            detail = raw.decode("utf-8", "replace")
        raise ApiError(f"HTTP {exc.code}: {_detail_text(detail)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(f"rollout controller unreachable at {url}: {exc}") from None


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI validation errors: where and what
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}" for d in detail
        )
    return str(detail)


def parse_steps(text: str) -> list[dict[str, Any]]:
    """``shadow:0.2:300,canary:0.05:600[:min_sample]`` as plan steps."""
    steps = []
    for chunk in filter(None, (c.strip() for c in text.split(","))):
        parts = chunk.split(":")
        if len(parts) not in (3, 4):
            raise SystemExit(f"step {chunk!r}: expected kind:share:duration_s[:min_sample]")
        step: dict[str, Any] = {"kind": parts[0], "share": float(parts[1]),
                                "duration_s": float(parts[2])}  # fmt: skip
        if len(parts) == 4:
            step["min_sample"] = int(parts[3])
        steps.append(step)
    return steps


def latest_versions(model: str) -> dict[str, str]:
    """The newest registered version of each part of ``model`` (from MLflow directly)."""
    from mlflow.tracking import MlflowClient

    from shared.models.locators import registered_name
    from shared.models.registry import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    out = {}
    for part in PARTS_OF[model]:
        versions = client.search_model_versions(f"name='{registered_name(part)}'")
        if not versions:
            raise SystemExit(f"no registered version of {registered_name(part)}")
        out[part] = str(max(int(v.version) for v in versions))
    return out


def build_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The plan to submit, from a file or from the flags."""
    if args.plan:
        plan: dict[str, Any] = yaml.safe_load(Path(args.plan).read_text())
        return plan
    if not args.model:
        raise SystemExit("start needs --plan FILE or --model")
    candidate = dict(c.split("=", 1) for c in args.candidate or [])
    if args.latest:
        candidate = latest_versions(args.model)
    plan = {"model": args.model, "candidate": candidate}
    if args.steps:
        plan["steps"] = parse_steps(args.steps)
    if args.metric:
        plan["analysis"] = {"metric": args.metric}
    if args.no_auto_promote:
        plan["auto_promote"] = False
    return plan


def show_rollout(r: dict[str, Any]) -> str:
    """A rollout in a few lines."""
    step = r.get("current_step") or {}
    where = (f"step {r['step'] + 1}/{r['steps']} {step.get('kind', '')} "
             f"{step.get('share', 0):.0%}" if step else "past the last step")  # fmt: skip
    elapsed = time.time() - r["step_started"] if r.get("step_started") else 0.0
    lines = [
        f"{r['id']}  {r['model']} {r['candidate']} (production was {r['production_before']})",
        f"  {r['state']} / {r['phase']}: {where}, {elapsed:.0f} s in",
    ]
    if r.get("hold_reason"):
        lines.append(f"  holding: {r['hold_reason']}")
    look = r.get("last_look") or {}
    if "metric" in look:
        m = look["metric"]
        lines.append(f"  {m['name']}: lift {m.get('lift')} [{m.get('ci_low')}, "
                     f"{m.get('ci_high')}], p={m.get('p_value')}, {m.get('decision')}")  # fmt: skip
    if "guardrails" in look:
        for arm, g in look["guardrails"].items():
            lines.append(f"  {arm}: {g['requests']:.0f} requests, errors {g['error_rate']}, "
                         f"degraded {g['degraded_share']}, p99 {g['p99_ms']} ms")  # fmt: skip
    if "shadow" in look:
        s = look["shadow"]
        lines.append(f"  shadow: {s['compared']:.0f} compared, {s['errors']:.0f} errors, "
                     f"final overlap@k {s.get('final.overlap_at_k')}, "
                     f"rbo {s.get('final.rbo')}")  # fmt: skip
    return "\n".join(lines)


def show_history(h: dict[str, Any]) -> str:
    """The decisions, one per line."""
    lines = [f"history of {h['id']}"]
    for d in h["decisions"]:
        stamp = time.strftime("%H:%M:%S", time.localtime(d["ts"]))
        lines.append(f"  {stamp}  step {d['step'] + 1}  {d['decision']:<12} "
                     + "; ".join(d["reasons"]))  # fmt: skip
    return "\n".join(lines)


def parse_weights(text: str) -> dict[str, float]:
    """``a=0.3,b=0.7`` as arm -> weight (the controller checks that they sum to 1)."""
    weights = {}
    for chunk in filter(None, (c.strip() for c in text.split(","))):
        name, sep, value = chunk.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise SystemExit(f"weight {chunk!r}: expected arm=weight")
    return weights


def show_experiment(e: dict[str, Any]) -> str:
    """An experiment in a few lines."""
    held = "[{:.4g}, {:.4g})".format(*e["range"]) if e.get("range") else "no range"
    head = f"{e['id']}  {e['kind']} in layer {e['layer']}: {e['traffic']:g} of its users"
    lines = [f"{head}, {e['state']}, {held}"]
    for arm in e["arms"]:
        changes = {k: arm[k] for k in ("models", "knobs") if arm.get(k)} or "production"
        lines.append(f"  {arm['name']:<16} {arm['weight']:<6g} {changes}")
    if e.get("waiting"):
        lines.append(f"  waiting: {e['waiting']}")
    if e.get("stop_reason"):
        lines.append(f"  stopped: {e['stop_reason']}")
    return "\n".join(lines)


def run_experiment(args: argparse.Namespace) -> tuple[Any, str]:
    """One ``experiment`` command: the controller's answer and how it reads."""
    base = "/v1/experiments"
    if args.action == "size":
        try:
            return sizing.size(args)
        except ValueError as exc:
            raise ApiError(str(exc)) from None
    if args.action == "start":
        loaded = yaml.safe_load(Path(args.file).read_text())
        # One plan, or a declared file's list (each created in turn; the first refusal stops)
        many = isinstance(loaded, dict) and isinstance(loaded.get("experiments"), list)
        plans = loaded["experiments"] if many else [loaded]
        answers = [call(args.url, "POST", base, plan, args.token) for plan in plans]
        return answers if many else answers[0], "\n".join(map(show_experiment, answers))
    if args.action == "list":
        answer = call(args.url, "GET", f"{base}?active={str(not args.all).lower()}")
        return answer, "\n".join(map(show_experiment, answer["experiments"])) or "no experiments"
    if args.action == "status":
        answer = call(args.url, "GET", f"{base}/{args.experiment_id}")
        history = call(args.url, "GET", f"{base}/{args.experiment_id}/history")
        lines = [show_experiment(answer)]
        for d in history["decisions"]:
            stamp = time.strftime("%H:%M:%S", time.localtime(d["ts"]))
            lines.append(f"  {stamp}  {d['decision']:<16} " + "; ".join(d["reasons"]))
        return answer, "\n".join(lines)
    if args.action == "analysis":
        answer = call(args.url, "GET", f"{base}/{args.experiment_id}/analysis?looks=1")
        latest = answer["latest"]
        page = f"{args.url}{base}/{args.experiment_id}/report"
        if latest is None:
            return answer, f"no look yet (the page: {page})"
        return answer, show_analysis(latest["figures"]) + f"\nthe page: {page}"
    if args.action == "stop":
        stop = f"{base}/{args.experiment_id}/stop"
        answer = call(args.url, "POST", stop, {"reason": args.reason}, args.token)
        return answer, show_experiment(answer)
    body = {"weights": parse_weights(args.weights)}
    answer = call(args.url, "PATCH", f"{base}/{args.experiment_id}/weights", body, args.token)
    return answer, show_experiment(answer)


def show_analysis(f: dict[str, Any]) -> str:
    """A look as lines: users per arm, then each comparison (or the interleaving preference)."""
    lines = ["  ".join(f"{arm}: {t['users']} users, ctr {t['ctr']}" for arm, t in
                       f.get("arms", {}).items())]  # fmt: skip
    if f.get("kind") == "interleaving":
        g = f.get("graded") or {}
        lines.append(
            f"graded (the verdict): winner {f.get('winner')}; mean margin "
            f"{g.get('mean_margin')} [{g.get('ci_low')}, {g.get('ci_high')}] "
            f"p={g.get('p_value')}; credit share {g.get('credit_share')}; "
            f"t-test p={g.get('t_test_p')}; neutral clicks {f.get('neutral_clicks')}"
        )
        lines.append(f"preferences {f.get('preferences')}; sign test {f.get('test')}")
        return "\n".join(lines)
    srm = f.get("srm", {})
    verdict = "MISMATCH" if srm.get("mismatch") else "ok"
    lines.append(f"sample ratio p={srm.get('p_value')} ({verdict})")
    for arm, comparison in f.get("comparisons", {}).items():
        for metric, row in comparison.items():
            if metric == "cuped" or row.get("lift") is None:
                continue
            interval = f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"
            lines.append(f"{arm} {metric}: lift {row['lift']:+.4f} {interval} "
                         f"p={row['p_value']} {row['decision']}")  # fmt: skip
        if comparison.get("cuped"):
            c = comparison["cuped"]
            seq = c.get("sequential") or {}
            lines.append(f"{arm} CUPED {c['metric']}: lift {c['lift']} variance reduction "
                         f"{c['variance_reduction']}; always-valid lift {seq.get('lift')} "
                         f"[{seq.get('ci_low')}, {seq.get('ci_high')}] "
                         f"{seq.get('decision', '')}")  # fmt: skip
    return "\n".join(lines)


def _experiment_parser(sub: Any) -> None:
    exp = sub.add_parser("experiment", help="A/B and interleaving experiments")
    actions = exp.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", help="create an experiment from a plan file")
    start.add_argument(
        "--file", required=True, help="a plan, or experiments: [plan, ...] (YAML or JSON)"
    )
    listing = actions.add_parser("list", help="scheduled and running experiments")
    listing.add_argument("--all", action="store_true", help="stopped experiments too")
    actions.add_parser("status", help="one experiment and its history").add_argument(
        "experiment_id"
    )
    actions.add_parser("analysis", help="the last look's figures").add_argument("experiment_id")
    stop = actions.add_parser("stop", help="stop an experiment")
    stop.add_argument("experiment_id")
    stop.add_argument("--reason", default="")
    sizing.add_arguments(
        actions.add_parser(
            "size", help="plan: users per arm for a lift, or the lift a sample detects (offline)"
        )
    )
    weights = actions.add_parser("weights", help="change the arms' weights")
    weights.add_argument("experiment_id")
    weights.add_argument("weights", help="arm=weight,... (every arm, summing to 1)")


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 when the controller refused."""
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m services.rollouts.cli", description=summary)
    parser.add_argument("--url", default=os.environ.get("CASCADE_ROLLOUTS_URL", DEFAULT_URL))
    parser.add_argument(
        "--token",
        default=client_token(),
        help="admin token (default: as shared/platform/auth.py finds it)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a rollout")
    start.add_argument("--plan", help="a plan file (YAML or JSON, as POST /v1/rollouts takes)")
    start.add_argument("--model", choices=sorted(PARTS_OF))
    start.add_argument("--candidate", action="append", metavar="PART=VERSION")
    start.add_argument("--latest", action="store_true", help="the newest version of each part")
    start.add_argument("--steps", help="kind:share:duration_s[:min_sample],...")
    start.add_argument("--metric", help="online metric (default clicks_per_request)")
    start.add_argument("--no-auto-promote", action="store_true")
    status = sub.add_parser("status", help="active rollouts, or one")
    status.add_argument("rollout_id", nargs="?")
    status.add_argument("--all", action="store_true", help="ended rollouts too")
    history = sub.add_parser("history", help="every decision of a rollout")
    history.add_argument("rollout_id")
    for name in ("promote", "resume", "abort"):
        action = sub.add_parser(name, help=f"{name} a rollout")
        action.add_argument("rollout_id")
        action.add_argument("--reason", default="")
    _experiment_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "experiment":
            answer, text = run_experiment(args)
        elif args.command == "start":
            answer = call(args.url, "POST", "/v1/rollouts", build_plan(args), args.token)
            text = show_rollout(answer)
        elif args.command == "status" and args.rollout_id:
            answer = call(args.url, "GET", f"/v1/rollouts/{args.rollout_id}")
            text = show_rollout(answer)
        elif args.command == "status":
            answer = call(args.url, "GET", f"/v1/rollouts?active={str(not args.all).lower()}")
            text = "\n".join(show_rollout(r) for r in answer["rollouts"]) or "no rollouts"
        elif args.command == "history":
            answer = call(args.url, "GET", f"/v1/rollouts/{args.rollout_id}/history")
            text = show_history(answer)
        else:
            answer = call(args.url, "POST", f"/v1/rollouts/{args.rollout_id}/{args.command}",
                          {"reason": args.reason}, args.token)  # fmt: skip
            text = show_rollout(answer)
    except ApiError as exc:
        print(f"refused: {exc}", file=sys.stderr)  # noqa: T201 - a CLI prints
        return 1
    print(json.dumps(answer, indent=2) if args.json else text)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
