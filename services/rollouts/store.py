"""RolloutStore: the controller's state in SQLite, so a restarted controller resumes.

Two tables: ``rollouts`` (one row per rollout: its plan, where it is, what it is waiting for)
and ``decisions`` (every decision with its reasons and the figures behind it: the history).
Each write is one transaction, so a controller killed between two writes restarts from the
last complete one; the registry is the other half of the truth (aliases), and the controller
re-applies the aliases of the state it resumes (see ``controller.Controller.resume``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.rollouts.plan import Plan

ACTIVE = ("running", "holding")
TERMINAL = ("promoted", "rolled_back", "aborted", "halted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    step INTEGER NOT NULL,
    phase TEXT NOT NULL,
    step_started REAL,
    extensions INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    production_before TEXT NOT NULL,
    hold_reason TEXT NOT NULL DEFAULT '',
    baseline TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    ts REAL NOT NULL,
    step INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    figures TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_rollout ON decisions (rollout_id, seq);
"""


@dataclass
class Rollout:
    """One rollout and where it stands.

    ``state``: running, holding (waiting for a person: inconclusive, or a plan that does not
    promote by itself), or a terminal state. ``phase`` within a step: ``warming`` (aliases set,
    waiting until every serving process holds the candidate), ``running`` (traffic on it,
    judged at every look), ``promoting`` (production moved, waiting for the services).
    """

    id: str
    plan: Plan
    state: str = "running"
    step: int = 0
    phase: str = "warming"
    step_started: float | None = None
    extensions: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    production_before: dict[str, str] = field(default_factory=dict)
    hold_reason: str = ""
    baseline: dict[str, Any] = field(default_factory=dict)  # metrics at the step's start

    @property
    def active(self) -> bool:
        """Still rolling out (running or holding)."""
        return self.state in ACTIVE

    @property
    def current_step(self) -> Any:
        """The plan step the rollout is in (None once past the last)."""
        return self.plan.steps[self.step] if self.step < len(self.plan.steps) else None


@dataclass(frozen=True)
class DecisionRecord:
    """One entry of a rollout's history."""

    rollout_id: str
    ts: float
    step: int
    decision: str
    reasons: list[str]
    figures: dict[str, Any]


class RolloutStore:
    """SQLite-backed rollouts and decisions (one connection, serialised by a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def save(self, r: Rollout, decision: DecisionRecord | None = None) -> None:
        """Write the rollout (and a decision with it, in the same transaction)."""
        r.updated = time.time()
        row = (
            r.id, r.plan.model, r.plan.model_dump_json(), r.state, r.step, r.phase,
            r.step_started, r.extensions, r.created, r.updated,
            json.dumps(r.production_before), r.hold_reason, json.dumps(r.baseline),
        )  # fmt: skip
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO rollouts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row
                )
                if decision is not None:
                    self._db.execute(
                        "INSERT INTO decisions (rollout_id, ts, step, decision, reasons, figures)"
                        " VALUES (?,?,?,?,?,?)",
                        (decision.rollout_id, decision.ts, decision.step, decision.decision,
                         json.dumps(decision.reasons), json.dumps(decision.figures, default=str)),
                    )  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, rollout_id: str) -> Rollout | None:
        """The rollout with this id (None: unknown)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
        return _rollout(row) if row else None

    def all(self, active_only: bool = False, limit: int = 100) -> list[Rollout]:
        """Rollouts, newest first."""
        sql = "SELECT * FROM rollouts"
        if active_only:
            sql += f" WHERE state IN ({','.join('?' * len(ACTIVE))})"
        sql += " ORDER BY created DESC LIMIT ?"
        args = (*ACTIVE, limit) if active_only else (limit,)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_rollout(r) for r in rows]

    def history(self, rollout_id: str) -> list[DecisionRecord]:
        """Every decision of a rollout, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT rollout_id, ts, step, decision, reasons, figures FROM decisions "
                "WHERE rollout_id = ? ORDER BY seq",
                (rollout_id,),
            ).fetchall()
        return [
            DecisionRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5])) for r in rows
        ]


def _rollout(row: tuple[Any, ...]) -> Rollout:
    return Rollout(
        id=row[0], plan=Plan.model_validate_json(row[2]), state=row[3], step=row[4],
        phase=row[5], step_started=row[6], extensions=row[7], created=row[8], updated=row[9],
        production_before=json.loads(row[10]), hold_reason=row[11], baseline=json.loads(row[12]),
    )  # fmt: skip
