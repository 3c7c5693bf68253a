"""``python -m shared.offline_store``: a point-in-time training set from the Parquet event log.

    python -m shared.offline_store --events data/events --out reports/training_set.parquet \\
        [--labels events --label-types click like | --labels impressions --outcomes click like]
        [--start 2026-11-01] [--end 2026-11-30T12:00] [--item-genres genres.json |
         --catalog-redis redis://127.0.0.1:6390/0]

Writes one Parquet file (the label columns, then ``FEATURE_COLUMNS``) and prints a one-line
JSON summary. Every row's features use only events strictly before the row's time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from shared.events import EVENT_TYPES
from shared.offline_store.item_genres import ItemGenres, catalog_item_genres, read_item_genres
from shared.offline_store.labels import DEFAULT_OUTCOMES, impression_labels
from shared.offline_store.log import EventLog
from shared.offline_store.pit import FEATURE_COLUMNS, build_training_set

log = logging.getLogger(__name__)


def parse_time(text: str) -> float:
    """Epoch seconds, or an ISO date/time (UTC unless it names a zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not epoch seconds or an ISO time: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shared.offline_store",
        description="Build a point-in-time training set from the Parquet event log.",
    )
    p.add_argument("--events", type=Path, default=Path("data/events"), help="the log folder")
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    p.add_argument("--labels", choices=("events", "impressions"), default="events",
                   help="events: the log's events of --label-types; impressions: every "
                        "impression labelled with what followed it within --horizon-s")  # fmt: skip
    p.add_argument("--label-types", nargs="+", choices=EVENT_TYPES, default=None)
    p.add_argument("--outcomes", nargs="+", choices=EVENT_TYPES, default=list(DEFAULT_OUTCOMES))
    p.add_argument("--horizon-s", type=float, default=3600.0)
    p.add_argument("--start", type=parse_time, help="first label time (epoch s or ISO)")
    p.add_argument("--end", type=parse_time, help="labels strictly before this time")
    genres = p.add_mutually_exclusive_group()
    genres.add_argument("--item-genres", type=Path, help=".json/.csv/.parquet item genres")
    genres.add_argument("--catalog-redis", help="read item genres from the online catalog")
    return p


def _genres(args: argparse.Namespace) -> ItemGenres | None:
    if args.item_genres is not None:
        return read_item_genres(args.item_genres)
    if args.catalog_redis:
        return catalog_item_genres(args.catalog_redis)
    return None


def run(args: argparse.Namespace) -> dict[str, object]:
    """Build and write the training set; return the summary."""
    started = time.perf_counter()
    source = EventLog(args.events)
    if args.labels == "impressions":
        labels = impression_labels(source, args.outcomes, args.horizon_s, args.start, args.end)
        table = build_training_set(source, labels, item_genres=_genres(args))
    else:
        table = build_training_set(
            source, label_types=args.label_types, start=args.start, end=args.end,
            item_genres=_genres(args),
        )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, compression="zstd")
    ts = table["timestamp"].to_numpy(zero_copy_only=False) if table.num_rows else []
    return {
        "out": str(args.out),
        "rows": table.num_rows,
        "labels": args.labels,
        "first_ts": float(min(ts)) if len(ts) else None,
        "last_ts": float(max(ts)) if len(ts) else None,
        "feature_columns": list(FEATURE_COLUMNS),
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 2 on bad arguments (argparse), 1 on unusable input."""
    args = _parser().parse_args(argv)
    if not args.events.is_dir():
        sys.stderr.write(f"no event log at {args.events} (the offline sink's data_dir)\n")
        return 1
    try:
        summary = run(args)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"cannot build the training set: {exc}\n")
        return 1
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0
