"""Local runtime: ``python -m deploy.local up|down|status`` (what ``make up`` / ``make down`` run).

``up`` starts Redis, the Tansu broker and MLflow (unless CASCADE_REDIS_URL / _KAFKA_BOOTSTRAP /
_MLFLOW_URI point at ones you run), trains models if there are none, loads the catalog into
Redis, starts every service and Prometheus (when installed), waits until all are ready and
prints where everything runs. Ctrl-C or ``down`` stops everything it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from deploy.local.runtime import LocalRuntime, StackError, read_state
from deploy.local.stack import RuntimeSettings
from shared.platform.settings import load_settings


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_up(rt: RuntimeSettings, detach: bool) -> int:
    runtime = LocalRuntime(rt, out=_out)
    try:
        runtime.up()
    except (StackError, KeyboardInterrupt) as exc:
        _out(f"start failed: {exc}")
        runtime.down()
        return 1
    _out(runtime.table())
    if detach:
        _out("running in the background: `make down` stops it")
        return 0
    _out("Ctrl-C stops everything")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if watch(runtime, stop) == "all exited":
        _out("everything it started has stopped (`make down` elsewhere?)")
        runtime.down()  # forgets the state file; nothing is left to stop
        return 0
    _out("stopping...")
    runtime.down()
    _out("stopped")
    return 0


def watch(runtime: LocalRuntime, stop: threading.Event, poll_s: float = 2.0) -> str:
    """Report processes that exit until ``stop`` is set ("stopped") or every process it
    started has exited ("all exited": stopped from elsewhere, so there is nothing to wait for)."""
    while not stop.wait(poll_s):
        for line in runtime.check_exits():
            _out(line)
        if runtime.running and not any(p.alive() for p in runtime.running):
            return "all exited"
    return "stopped"


def cmd_down(rt: RuntimeSettings) -> int:
    stopped = LocalRuntime(rt, out=_out).down()
    _out(f"stopped {stopped} process group(s)" if stopped else "nothing was running")
    return 0


def cmd_status(rt: RuntimeSettings) -> int:
    state = read_state(rt.run_dir)
    if not state:
        _out("not running")
        return 1
    _out(LocalRuntime(rt, out=_out).table(state))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything and wait until ready")
    up.add_argument("--detach", action="store_true", help="return once ready; `down` stops it")
    up.add_argument("--models-dir", type=Path, help="exported models folder (default models/)")
    up.add_argument("--tiny", action="store_true", help="train the tiny config if no model yet")
    up.add_argument("--protect-reads", action="store_true", help="every read needs .run/read_token")
    sub.add_parser("down", help="stop everything `up` started")
    sub.add_parser("status", help="what runs where")
    args = parser.parse_args(argv)
    overrides = {}
    if getattr(args, "models_dir", None):
        overrides["models_dir"] = args.models_dir
    for flag in ("tiny", "protect_reads"):
        if getattr(args, flag, False):
            overrides[flag] = True
    rt = load_settings(RuntimeSettings, **overrides)
    if args.command == "up":
        return cmd_up(rt, args.detach)
    if args.command == "down":
        return cmd_down(rt)
    return cmd_status(rt)


if __name__ == "__main__":
    raise SystemExit(main())
