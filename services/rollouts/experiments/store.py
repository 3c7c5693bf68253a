"""ExperimentStore: experiments and their history in the controller's SQLite file.

Two tables beside the rollouts' (which this module never touches): ``experiments`` (one row
per experiment: its plan, its resolved arms, where it stands, the range it holds) and
``experiment_decisions`` (created, started, weights_changed, stopped, with their reasons).
Refusals are not stored: a refused experiment changed nothing. Each write is one
transaction, so a restarted controller finds every running experiment at its range.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from services.gateway.experiments.assignment import ArmSpec, ExperimentAssignment
from services.rollouts.experiments.plan import ExperimentPlan

ACTIVE = ("scheduled", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    layer TEXT NOT NULL,
    plan TEXT NOT NULL,
    arms TEXT NOT NULL,
    state TEXT NOT NULL,
    range_lo REAL,
    range_hi REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    stopped REAL,
    waiting TEXT NOT NULL DEFAULT '',
    stop_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS experiment_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT NOT NULL REFERENCES experiments(id),
    ts REAL NOT NULL,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS experiment_decisions_by_id ON experiment_decisions (experiment_id, seq);
"""
_ARMS = msgspec.json.Decoder(tuple[ArmSpec, ...])


@dataclass
class Experiment:
    """One experiment and where it stands.

    ``state``: ``scheduled`` (created, its start time not reached, or waiting: ``waiting``
    says for what), ``running`` (published, holding ``range`` of its layer), ``stopped``.
    ``arms`` are resolved (a variant reference replaced by its models and knobs).
    """

    id: str
    plan: ExperimentPlan
    arms: tuple[ArmSpec, ...]
    state: str = "scheduled"
    range: tuple[float, float] | None = None  # kept after the stop, for the record
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    started: float | None = None
    stopped: float | None = None
    waiting: str = ""
    stop_reason: str = ""

    @property
    def active(self) -> bool:
        """Scheduled or running."""
        return self.state in ACTIVE

    def assignment(self) -> ExperimentAssignment:
        """The experiment as the gateway applies it (running experiments only)."""
        p = self.plan
        assert self.range is not None, "only a running experiment holds a range"
        return ExperimentAssignment(
            experiment_id=self.id,
            layer=p.layer,
            arms=self.arms,
            salt=self.id,
            kind=p.kind,
            range=self.range,
            audience=p.audience,
            segments=tuple(p.segments),
            sticky=p.sticky,
        )

    def parameters(self) -> set[str]:
        """What its arms change: ``models.<slot>`` and ``knobs.<component>.<knob>``."""
        out = {f"models.{slot}" for a in self.arms for slot in a.models}
        out |= {f"knobs.{c}.{k}" for a in self.arms for c, ks in a.knobs.items() for k in ks}
        return out


@dataclass(frozen=True)
class ExperimentDecision:
    """One entry of an experiment's history."""

    experiment_id: str
    ts: float
    decision: str  # created | started | weights_changed | stopped
    reasons: list[str]
    details: dict[str, Any]


class ExperimentStore:
    """SQLite-backed experiments and their decisions (one connection, serialised by a lock)."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # the rollouts' connection shares the file
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def save(self, e: Experiment, *decisions: ExperimentDecision) -> None:
        """Write the experiment (and its decisions with it, in the same transaction)."""
        e.updated = time.time()
        lo, hi = e.range if e.range is not None else (None, None)
        row = (
            e.id,
            e.plan.layer,
            e.plan.model_dump_json(),
            msgspec.json.encode(e.arms).decode(),
            e.state,
            lo,
            hi,
            e.created,
            e.updated,
            e.started,
            e.stopped,
            e.waiting,
            e.stop_reason,
        )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO experiments VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row
                )
                for d in decisions:
                    self._db.execute(
                        "INSERT INTO experiment_decisions (experiment_id, ts, decision, reasons, "
                        "details) VALUES (?,?,?,?,?)",
                        (
                            d.experiment_id,
                            d.ts,
                            d.decision,
                            json.dumps(d.reasons),
                            json.dumps(d.details, default=str),
                        ),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, experiment_id: str) -> Experiment | None:
        """The experiment with this id (None: unknown)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM experiments WHERE id = ?", (experiment_id,)
            ).fetchone()
        return _experiment(row) if row else None

    def all(self, active_only: bool = False, limit: int = 1000) -> list[Experiment]:
        """Experiments, newest first (``active_only``: scheduled or running)."""
        sql = "SELECT * FROM experiments"
        if active_only:
            sql += f" WHERE state IN ({','.join('?' * len(ACTIVE))})"
        sql += " ORDER BY created DESC, id LIMIT ?"
        args = (*ACTIVE, limit) if active_only else (limit,)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_experiment(r) for r in rows]

    def history(self, experiment_id: str) -> list[ExperimentDecision]:
        """Every decision of an experiment, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT experiment_id, ts, decision, reasons, details FROM experiment_decisions "
                "WHERE experiment_id = ? ORDER BY seq",
                (experiment_id,),
            ).fetchall()
        return [
            ExperimentDecision(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4])) for r in rows
        ]


def _experiment(row: tuple[Any, ...]) -> Experiment:
    return Experiment(
        id=row[0],
        plan=ExperimentPlan.model_validate_json(row[2]),
        arms=_ARMS.decode(row[3]),
        state=row[4],
        range=(row[5], row[6]) if row[5] is not None else None,
        created=row[7],
        updated=row[8],
        started=row[9],
        stopped=row[10],
        waiting=row[11],
        stop_reason=row[12],
    )
