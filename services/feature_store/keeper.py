"""The store keeper: re-runs the bootstrap when Redis comes back without its data.

With ``CASCADE_FEATURE_STORE_BOOTSTRAP_DATA`` set (the local runtime sets it to the MovieLens
folder it bootstrapped from), the feature store checks every ``bootstrap_check_s`` whether the
catalog is there. When it is not (a Redis restarted without persistence, a flushed database),
it marks the store as being rebuilt (``store:rebuilding``, read by the gateways, which serve
unknown-user answers marked degraded meanwhile), replays the bootstrap, and clears the mark.
Events that reached the store after the bootstrap are not replayed here: they are in the
offline log (docs/faults.md says what that means).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from pathlib import Path

from prometheus_client import Counter

from shared.online_store import keys
from shared.online_store.health import REBUILDING_TTL_S
from shared.platform.redis_client import REDIS_ERRORS, SyncRedis, create_redis

log = logging.getLogger(__name__)

REBUILDS = Counter(
    "cascade_store_rebuilds_total",
    "Bootstraps re-run because the store lost its catalog.",
    ["outcome"],
)


def check_bootstrap_data(path: str) -> Path:
    """The MovieLens folder, or ValueError naming what is missing (checked at start)."""
    folder = Path(path)
    if not (folder / "u.data").is_file() and not (folder / "ml-100k.inter").is_file():
        raise ValueError(
            f"bootstrap_data {folder} holds no MovieLens ratings (ml-100k.inter or u.data)"
        )
    if importlib.util.find_spec("pandas") is None:
        raise ValueError("bootstrap_data needs pandas (pip install -e '.[train]')")
    return folder


class StoreKeeper:
    """Watches the catalog; re-runs the bootstrap from ``data_dir`` when it is gone."""

    def __init__(
        self, redis_url: str, data_dir: Path, interval_s: float, cluster: bool = False
    ) -> None:
        self.redis_url = redis_url
        self.cluster = cluster
        self.data_dir = data_dir
        self.interval_s = interval_s
        self.state = "not checked yet"
        self.rebuilds = 0
        self._client: SyncRedis | None = None  # one client for every check (it reconnects)

    async def run_forever(self) -> None:
        """Check, rebuild when needed, sleep; a failed check or rebuild is retried."""
        while True:
            try:
                await asyncio.to_thread(self.check_once)
            except REDIS_ERRORS as exc:  # Redis down: its readiness says so
                self.state = f"cannot check the store: {exc}"
            except Exception as exc:  # a failed rebuild is logged and tried again
                log.exception("store rebuild failed")
                self.state = f"rebuild failed (retried in {self.interval_s:.0f} s): {exc}"
            await asyncio.sleep(self.interval_s)

    def check_once(self) -> bool:
        """Rebuild if the catalog is missing; True when a rebuild ran."""
        if self._client is None:
            self._client = create_redis(self.redis_url, cluster=self.cluster)
        if self._client.exists(keys.CATALOG_IDS):
            if not self.state.startswith("ok"):
                self.state = f"ok: catalog present (rebuilt {self.rebuilds} time(s))"
            return False
        self._rebuild(self._client)
        return True

    def _rebuild(self, client: SyncRedis) -> None:
        from services.feature_store.bootstrap import bootstrap  # pandas: only when needed

        started = time.time()
        # The mark doubles as a lock: of several feature store replicas, one rebuilds.
        if not client.set(keys.STORE_REBUILDING, repr(started), ex=REBUILDING_TTL_S, nx=True):
            self.state = "rebuilding: another keeper holds store:rebuilding"
            return
        self.state = f"rebuilding from {self.data_dir} since {started:.0f}"
        log.warning("online store has no catalog: re-running the bootstrap", extra={
            "data": str(self.data_dir)})  # fmt: skip
        try:
            report = bootstrap(client, str(self.data_dir), train_only=False, batch=2000)
        except Exception:
            REBUILDS.labels("failed").inc()
            client.delete(keys.STORE_REBUILDING)
            client.delete(keys.CATALOG_IDS)  # a half-written catalog must not pass for whole
            raise
        client.delete(keys.STORE_REBUILDING)
        self.rebuilds += 1
        REBUILDS.labels("done").inc()
        self.state = f"ok: rebuilt {self.rebuilds} time(s), last in {report.seconds:.1f} s"
        done = {"items": report.items, "users": report.users, "events": report.events}
        log.warning("online store rebuilt", extra={**done, "s": report.seconds})
