"""Training-serving skew: served feature values against their offline recomputation.

    python -m services.monitors.skew [--lookback-s 3600] [--settle-s 60] [--out reports/skew]
    python -m services.monitors.skew --every 300 --port 8010      # repeat, serve /metrics

Reads the ranking service's served-feature samples (Kafka topic ``served_features``) from
the last ``lookback_s`` up to ``settle_s`` ago (the offline sink must have flushed the events
before them), recomputes each sample's features at its own time from the offline event log,
and writes ``skew.json`` and ``skew.prom`` (the gauges) under ``--out``. Exit 0 even when it
finds skew (the report says so); 1 when the broker or the log cannot be read; 2 for unusable
arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from services.monitors.compare import ALERT, ATOL, RTOL, WARN, mismatch_report, prometheus_text
from services.monitors.recompute import offline_features, served_features
from services.monitors.served_features import read_samples

log = logging.getLogger("services.monitors.skew")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One comparison; returns the report (also written under ``args.out``)."""
    started = time.time()
    got = read_samples(args.bootstrap, args.topic, started - args.lookback_s,
                       started - args.settle_s, args.max_samples)  # fmt: skip
    genres = _item_genres(args)
    offline = offline_features(got.records, args.events_dir, genres)
    served = served_features(got.records, list(offline))
    report = {
        "started_at": round(started, 3),
        "finished_at": round(time.time(), 3),
        "window": {"since": started - args.lookback_s, "until": started - args.settle_s},
        "samples": len(got.records),
        "records_read": got.read,
        "records_malformed": got.malformed,
        "events_dir": str(args.events_dir),
        "tolerance": {"atol": args.atol, "rtol": args.rtol},
        "thresholds": {"warn": WARN, "alert": ALERT},
        "not_compared": ["item_age", "item_year"] + ([] if genres else ["cross_*: no genres"]),
        "features": mismatch_report(served, offline, args.atol, args.rtol),
    }
    _write(report, Path(args.out))
    return report


def _item_genres(args: argparse.Namespace) -> dict[str, list[str]] | None:
    """Item genres for the cross features: a file, else the online store's catalog."""
    from shared.offline_store import catalog_item_genres, read_item_genres

    if args.item_genres:
        return read_item_genres(args.item_genres)
    if args.redis_url:
        try:
            return catalog_item_genres(args.redis_url) or None
        except OSError as exc:  # redis-py's connection errors are OSErrors
            log.warning("no item genres from the catalog: %s", exc)
    return None


def _write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("skew.json", json.dumps(report, indent=1) + "\n"),
                       ("skew.prom", prometheus_text(report))):  # fmt: skip
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)  # readers (the ranking service) never see half a file


def serve(args: argparse.Namespace) -> None:
    """Run every ``args.every`` seconds; the gauges on ``:args.port/metrics``."""
    from prometheus_client import Gauge, start_http_server

    rate = Gauge("cascade_skew_mismatch_rate", "Share of served values that differ from the "
                 "offline point-in-time recomputation.", ["feature"])  # fmt: skip
    compared = Gauge("cascade_skew_compared", "Values the mismatch rate rests on.", ["feature"])
    last = Gauge("cascade_skew_last_run_timestamp_seconds", "When the last comparison finished.")
    start_http_server(args.port, addr="127.0.0.1" if args.loopback else "0.0.0.0")
    while True:
        try:
            report = run(args)
        except Exception:  # a broker or log outage: report the next time, keep serving
            log.exception("skew run failed")
        else:
            for name, f in report["features"].items():
                compared.labels(name).set(f["compared"])
                if f["mismatch_rate"] is not None:
                    rate.labels(name).set(f["mismatch_rate"])
            last.set(report["finished_at"])
        time.sleep(args.every)


def parser() -> argparse.ArgumentParser:
    """The command line (defaults from the platform's environment)."""
    env = os.environ.get
    p = argparse.ArgumentParser(description="training-serving skew of the ranker's features")
    p.add_argument("--bootstrap", default=env("CASCADE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    p.add_argument("--topic", default=env("CASCADE_RANKING_FEATURE_LOG_TOPIC", "served_features"))
    p.add_argument("--events-dir", type=Path,
                   default=Path(env("CASCADE_OFFLINE_SINK_DATA_DIR", "data/events")))  # fmt: skip
    p.add_argument("--redis-url", default=env("CASCADE_REDIS_URL", ""),
                   help="online store (its catalog: genres of the cross features)")  # fmt: skip
    p.add_argument("--item-genres", type=Path, help="item genres file instead of the catalog")
    p.add_argument("--lookback-s", type=float, default=3600.0)
    p.add_argument("--settle-s", type=float, default=60.0)
    p.add_argument("--max-samples", type=int, default=2000)
    p.add_argument("--atol", type=float, default=ATOL)
    p.add_argument("--rtol", type=float, default=RTOL)
    p.add_argument("--out", type=Path, default=Path("reports/skew"))
    p.add_argument("--every", type=float, default=0.0, help="repeat every S seconds (0: once)")
    p.add_argument("--port", type=int, default=8010, help="/metrics port with --every")
    p.add_argument("--loopback", action="store_true", help="serve /metrics on 127.0.0.1 only")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run once (printing a summary line per feature) or forever with ``--every``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = parser()
    args = p.parse_args(argv)
    bad = [n for n in ("lookback_s", "max_samples") if getattr(args, n) <= 0]
    bad += [n for n in ("settle_s", "atol", "rtol", "every") if getattr(args, n) < 0]
    if bad:
        p.error(f"must be positive: {', '.join('--' + b.replace('_', '-') for b in bad)}")
    if args.every > 0:
        serve(args)
    from kafka.errors import KafkaError

    try:
        report = run(args)
    except (KafkaError, OSError) as exc:  # no broker, an unreadable log: one clear line
        log.error("skew run failed: %s: %s", type(exc).__name__, exc)
        return 1
    sys.stdout.write(f"{report['samples']} samples, {args.out / 'skew.json'}\n")
    for name, f in report["features"].items():
        sys.stdout.write(f"{name:>20}  {f['mismatch_rate']}  ({f['compared']} values)  "
                         f"{f['status']}\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
