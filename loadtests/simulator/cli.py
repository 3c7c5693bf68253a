"""``python -m loadtests.simulator``: simulated users against a running gateway and events API.

    python -m loadtests.simulator --gateway http://127.0.0.1:8000 --events http://127.0.0.1:8001 \
        --rate 20 --duration 60 --seed 1 [--k 10] [--new-users 0.1] [--variant name] \
        [--sessions N] [--out reports/simulator/summary.json]

Prints the summary table; ``--out`` also writes it as JSON with the settings used. Settings not
on the command line come from ``CASCADE_SIMULATOR_*`` (see ``settings.py``). Exit code 1 when
the data is missing or no request got an answer, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from loadtests.simulator.driver import run_simulation
from loadtests.simulator.ground_truth import GroundTruth
from loadtests.simulator.settings import SimulatorSettings
from loadtests.simulator.summary import format_table
from shared.datasets.movielens import DataError

log = logging.getLogger("loadtests.simulator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (defaults: the local runtime's ports, 20 requests/s for 60 s)."""
    p = argparse.ArgumentParser(prog="python -m loadtests.simulator", description=__doc__)
    p.add_argument("--gateway", default="http://127.0.0.1:8000", help="gateway base URL")
    p.add_argument("--events", default="http://127.0.0.1:8001", help="events API base URL")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second (open loop)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="seconds during which sessions start")
    group.add_argument("--sessions", type=int, help="a fixed number of sessions instead")
    p.add_argument("--seed", type=int, help="the run's seed (default 1)")
    p.add_argument("--k", type=int, help="list length asked for (default 10)")
    p.add_argument("--new-users", type=float, help="share of sessions by new users (0.1)")
    p.add_argument("--variant", help="force ?variant= on every request")
    p.add_argument("--data", type=Path, help="MovieLens-100K folder (data/ml-100k)")
    p.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = p.parse_args(argv)
    if args.duration is None and args.sessions is None:
        args.duration = 60.0
    return args


def build_settings(args: argparse.Namespace) -> SimulatorSettings:
    """Environment settings with the given command-line values on top."""
    top: dict[str, Any] = {"seed": args.seed, "data_dir": args.data}
    driver = {"k": args.k, "variant": args.variant}
    population = {"new_user_share": args.new_users}
    overrides = {key: v for key, v in top.items() if v is not None}
    if given := {key: v for key, v in driver.items() if v is not None}:
        overrides["driver"] = given
    if given := {key: v for key, v in population.items() if v is not None}:
        overrides["population"] = given
    return SimulatorSettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Run the simulation, print the table, write the JSON summary."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        settings = build_settings(args)
    except ValidationError as exc:
        sys.stderr.write(f"invalid setting: {exc}\n")
        return 2
    try:
        truth = GroundTruth.load(settings.data_dir, settings.cache_dir, settings.truth)
    except (DataError, OSError) as exc:
        sys.stderr.write(f"cannot load the ground truth: {exc}\n")
        return 1
    summary = asyncio.run(
        run_simulation(
            settings, truth, args.gateway, args.events, args.rate, args.duration, args.sessions
        )
    ).as_dict()
    sys.stdout.write(format_table(summary) + "\n")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"gateway": args.gateway, "events": args.events, "rate": args.rate}
        report |= {"settings": settings.model_dump(mode="json"), "summary": summary}
        args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        sys.stdout.write(f"written to {args.out}\n")
    if summary["requests"] and summary["errors"] >= summary["requests"]:
        sys.stderr.write("no request got an answer: is the gateway running?\n")
        return 1
    return 0
