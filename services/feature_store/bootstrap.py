"""Bootstrap the online store from MovieLens: catalog, user profiles and the replayed history.

    python -m services.feature_store.bootstrap --data data/ml-100k [--train-only] [--reset]

Items and users are written as records; the ratings (all of them, or only those before the
temporal split's validation time with ``--train-only``) are replayed as ``rate`` events through
the same idempotent writer the ingest worker uses, so counters, affinities, histories and
popularity are what the stream would have produced. Event ids are derived from the rating, so
running the job twice counts nothing twice (within the dedupe TTL; use ``--reset`` to rebuild).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.datasets import MOVIELENS_EVENT_TYPE
from shared.events import Event
from shared.online_store.types import ItemRecord, UserProfile
from shared.online_store.writer import StoreWriter
from shared.platform.logging import configure_logging
from shared.platform.redis_client import REDIS_ERRORS, SyncRedis, cluster_from_env, create_redis
from shared.platform.settings import check_cluster_url, check_redis_url

if TYPE_CHECKING:  # pandas-based: loaded only when the job runs (see bootstrap())
    from shared.datasets.movielens import MovieLens

log = logging.getLogger("feature_store.bootstrap")

# Every key of the layout (keys.py): the item side under {i}, users under {u:<id>}, dedupe
# marks (on a cluster, the marks live under those two tags). Then the names of the layout
# before the item-side tag, so --reset also clears a store written by an older version.
STORE_KEY_PATTERNS = ("{i}:*", "{u:*", "ev:*")
LEGACY_KEY_PATTERNS = (
    "item:*", "ictr:*", "segpop:*", "catalog:*", "items:fresh", "trending*",
)  # fmt: skip


@dataclass
class BootstrapReport:
    """What the job wrote."""

    items: int
    users: int
    events: int
    applied: int
    until: float
    seconds: float


def _opt(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def catalog_records(data: MovieLens) -> list[ItemRecord]:
    """Items with ``added_ts`` = their first rating (when they entered the catalog)."""
    inter, items = data.interactions, data.items
    first = inter.groupby("item_id")["timestamp"].min().to_dict()
    default = float(inter["timestamp"].min())
    return [
        ItemRecord(
            item_id=str(row.item_id),
            title=str(row.title),
            genres=tuple(row.genres),
            release_year=None if math.isnan(row.release_year) else int(row.release_year),
            added_ts=float(first.get(row.item_id, default)),
        )
        for row in items.itertuples(index=False)
    ]


def user_profiles(data: MovieLens) -> list[UserProfile]:
    """User profile records."""
    users = data.users
    return [
        UserProfile(
            user_id=str(row.user_id),
            age=None if math.isnan(row.age) else int(row.age),
            gender=_opt(row.gender),
            occupation=_opt(row.occupation),
            zip_code=_opt(row.zip_code),
        )
        for row in users.itertuples(index=False)
    ]


def rating_events(data: MovieLens, until: float, batch: int) -> Iterator[list[Event]]:
    """Ratings before ``until`` as events (``rate``, the rating as value), oldest first, batched."""
    inter = data.interactions
    inter = inter[inter["timestamp"] < until]
    out: list[Event] = []
    for u, i, r, ts in zip(
        inter["user_id"], inter["item_id"], inter["rating"], inter["timestamp"], strict=True
    ):
        # Trusted local data: skip validation (model_construct), ~10x faster than validating.
        out.append(
            Event.model_construct(
                event_id=f"ml:{u}:{i}:{ts}",
                user_id=str(u),
                item_id=str(i),
                type=MOVIELENS_EVENT_TYPE,
                value=float(r),
                timestamp=float(ts),
                request_id=None,
                position=None,
                accepted_ts=None,
            )  # fmt: skip
        )
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def reset_store(client: SyncRedis) -> int:
    """Delete every key of the online store layout; returns how many. On a cluster the scan
    visits every primary and the deletes go out per slot."""
    n = 0
    for pattern in (*STORE_KEY_PATTERNS, *LEGACY_KEY_PATTERNS):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for k in range(0, len(keys), 1000):
            n += int(client.delete(*keys[k : k + 1000]))
    return n


def bootstrap(client: SyncRedis, data_dir: str, train_only: bool, batch: int) -> BootstrapReport:
    """Load the catalog and profiles, then replay the ratings; idempotent."""
    # pandas-based (no torch), so imported here: the feature_store app never loads it.
    from shared.datasets.movielens import load_movielens
    from shared.datasets.time_split import temporal_cutoffs

    start = time.monotonic()
    data = load_movielens(data_dir)
    until = math.inf
    if train_only:
        until = temporal_cutoffs(data.interactions["timestamp"].to_numpy())[0]
    writer = StoreWriter(client)
    items, users = catalog_records(data), user_profiles(data)
    writer.put_items(items)
    writer.put_users(users)
    n_events = applied = 0
    for events in rating_events(data, until, batch):
        result = writer.apply_events(events)
        n_events += len(events)
        applied += result.applied
    return BootstrapReport(
        len(items), len(users), n_events, applied, until, time.monotonic() - start
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    import os

    parser = argparse.ArgumentParser(description="Load MovieLens into the Redis online store.")
    parser.add_argument("--data", default="data/ml-100k", help="MovieLens-100K folder")
    parser.add_argument(
        "--redis-url", default=os.environ.get("CASCADE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        default=cluster_from_env(),
        help="the URL names a node of a Redis Cluster (default: CASCADE_REDIS_CLUSTER)",
    )
    parser.add_argument("--train-only", action="store_true", help="stop at the validation split")
    parser.add_argument("--reset", action="store_true", help="delete the store's keys first")
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args(argv)
    configure_logging("feature_store.bootstrap", "INFO", json_lines=False)
    try:
        url = check_redis_url(args.redis_url)
        if args.redis_cluster:
            check_cluster_url(url)
        client = create_redis(url, timeout_s=30.0, cluster=args.redis_cluster)
        if args.reset:
            log.info("reset: deleted %d keys", reset_store(client))
        report = bootstrap(client, args.data, args.train_only, args.batch)
    except (ValueError, RuntimeError, *REDIS_ERRORS) as exc:  # type: ignore[misc]
        sys.stderr.write(f"bootstrap failed: {exc}\n")
        return 1
    sys.stdout.write(
        f"bootstrap: {report.items} items, {report.users} users, {report.events} rating events "
        f"({report.applied} newly applied) in {report.seconds:.1f}s\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
