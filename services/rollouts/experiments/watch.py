"""ExperimentWatch: every running experiment's exposure followed and looked at on a schedule.

For each running experiment the exposure log tracks the experiment id from its start (with
``pre_period_s`` of events before it, the CUPED covariate); every ``look_every_s`` the watch
computes a look (``analysis.analyse``, the sequential tests carried from look to look), keeps
it in the controller's SQLite file (table ``experiment_looks``: the effect over time for the
report), and exports the headline figures as ``cascade_experiment_figure``. A stopped
experiment gets a last look, then its exposure reader is stopped.

A look needs the exposure log to have caught up: while it rebuilds (a restart re-reads both
topics from the start), no look is taken, so no half-counted figure is ever recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Gauge

from services.rollouts.experiments.analysis import Carried, ExperimentExposure, analyse, spec_of
from services.rollouts.experiments.store import Experiment

log = logging.getLogger(__name__)
FIGURE = Gauge(
    "cascade_experiment_figure",
    "The last look's figures of a running experiment by arm: users, lift and its always-valid "
    "interval (ci_low, ci_high) and p-value of the primary metric against the control, srm_p; "
    "for interleaving the share of users preferring the arm, the arm's share of credited "
    "clicks (credit_share) and, on the second arm, the mean per-user credit margin over the "
    "first with its always-valid interval (credit_margin, ci_low, ci_high).",
    ["experiment", "arm", "figure"],
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiment_looks (
    experiment_id TEXT NOT NULL,
    ts REAL NOT NULL,
    figures TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS experiment_looks_by_id ON experiment_looks (experiment_id, ts);
"""


class TrackingExposure(ExperimentExposure, Protocol):
    """The exposure log as the watch drives it."""

    def start(self, rollout_id: str, since_ts: float, pre_period_s: float = 0.0) -> None:
        """Track an id from a time."""
        ...

    def stop(self, rollout_id: str) -> None:
        """Stop tracking an id."""
        ...

    def caught_up(self, rollout_id: str) -> bool:
        """Whether the id's reader has read both topics to their end once."""
        ...


class LookStore:
    """The looks of every experiment, oldest first (the effect over time)."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def add(self, experiment_id: str, ts: float, figures: dict[str, Any]) -> None:
        """Keep one look."""
        with self._lock:
            self._db.execute("INSERT INTO experiment_looks VALUES (?,?,?)",
                             (experiment_id, ts, json.dumps(figures)))  # fmt: skip

    def looks(self, experiment_id: str, limit: int = 2000) -> list[dict[str, Any]]:
        """The last ``limit`` looks, oldest first, each ``{"ts", "figures"}``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT ts, figures FROM experiment_looks WHERE experiment_id = ? "
                "ORDER BY ts DESC LIMIT ?", (experiment_id, limit),
            ).fetchall()  # fmt: skip
        return [{"ts": ts, "figures": json.loads(f)} for ts, f in reversed(rows)]

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class ExperimentWatch:
    """Follows the running experiments' exposure and takes their looks."""

    def __init__(self, exposure: TrackingExposure, looks: LookStore, look_every_s: float = 10.0,
                 pre_period_s: float = 14 * 86_400.0,
                 weights_changed: Callable[[str], float | None] = lambda _id: None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.exposure = exposure
        self.weights_changed = weights_changed  # when an experiment's weights last changed
        self.store = looks
        self.look_every_s = look_every_s
        self.pre_period_s = pre_period_s
        self.clock = clock
        self._tracked: dict[str, float] = {}  # experiment id -> when tracking began
        self._last_look: dict[str, float] = {}
        self._carried: dict[str, Carried] = {}
        self.latest: dict[str, dict[str, Any]] = {}

    async def on_tick(self, experiments: list[Experiment]) -> None:
        """Start following new running experiments, look at those due, finish stopped ones."""
        now = self.clock()
        for e in experiments:
            if e.state == "running" and e.started is not None:
                if e.id not in self._tracked:
                    self.exposure.start(e.id, e.started, self.pre_period_s)
                    self._tracked[e.id] = now
                if now - self._last_look.get(e.id, 0.0) >= self.look_every_s:
                    await self.look(e)
            elif e.id in self._tracked:
                await self.look(e)  # the last look, with everything counted until the stop
                self.exposure.stop(e.id)
                self._tracked.pop(e.id)
                self._carried.pop(e.id, None)
                FIGURE.clear()  # bounded: re-exported from the running ones at their next look

    async def look(self, e: Experiment) -> dict[str, Any] | None:
        """One look at ``e`` (None while its exposure is still being rebuilt)."""
        if not self.exposure.caught_up(e.id):
            return None
        changed = self.weights_changed(e.id)
        skipped = "" if changed is None else f"weights changed at {changed:.0f}: users assigned "
        skipped += "before keep their arm, so no one ratio is expected" if skipped else ""
        spec = spec_of(e.id, [(a.name, a.weight) for a in e.arms], e.plan.kind,
                       e.plan.metrics.model_dump(), skipped)  # fmt: skip
        carried = self._carried.setdefault(e.id, Carried())
        try:
            figures = await asyncio.to_thread(analyse, spec, self.exposure, carried)
        except Exception:  # an analysis bug must not stop the controller's tick
            log.exception("experiment look failed", extra={"experiment": e.id})
            return None
        now = self.clock()
        self._last_look[e.id] = now
        figures["primary"] = spec.primary
        self.latest[e.id] = {"ts": now, **figures}
        self.store.add(e.id, now, figures)
        _export(e.id, figures, spec.primary)
        return figures


def _export(experiment_id: str, figures: dict[str, Any], primary: str) -> None:
    for arm, totals in figures.get("arms", {}).items():
        FIGURE.labels(experiment_id, arm, "users").set(totals.get("users") or 0)
    if figures.get("kind") == "interleaving":
        shares = figures.get("test", {}).get("share_preferring", {})
        for arm, share in shares.items():
            if share is not None:
                FIGURE.labels(experiment_id, arm, "preference_share").set(share)
        _export_graded(experiment_id, figures)
        return
    srm_p = figures.get("srm", {}).get("p_value")
    if srm_p is not None:
        FIGURE.labels(experiment_id, "all", "srm_p").set(srm_p)
    for arm, comparison in figures.get("comparisons", {}).items():
        row = comparison.get(primary, {})
        for figure in ("lift", "ci_low", "ci_high", "p_value"):
            value = row.get(figure)
            if value is not None:
                FIGURE.labels(experiment_id, arm, figure).set(value)


def _export_graded(experiment_id: str, figures: dict[str, Any]) -> None:
    """The graded read: each arm's credit share, and on the second arm its margin over the first."""
    graded = figures.get("graded") or {}
    for arm, share in (graded.get("credit_share") or {}).items():
        if share is not None:
            FIGURE.labels(experiment_id, arm, "credit_share").set(share)
    second = figures.get("teams", [None, None])[1]
    for figure, key in (
        ("credit_margin", "mean_margin"),
        ("ci_low", "ci_low"),
        ("ci_high", "ci_high"),
    ):
        value = graded.get(key)
        if second is not None and value is not None:
            FIGURE.labels(experiment_id, second, figure).set(value)
