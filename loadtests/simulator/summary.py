"""The outcome of a run: traffic and event counts, and per arm what the simulated users did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadtests.simulator.behaviour import Reaction

MAX_SAMPLES = 10  # error messages kept per run


@dataclass
class ArmStats:
    """One arm (the variant that served the answers) as the simulated users experienced it."""

    users: set[str] = field(default_factory=set)
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    likes: int = 0
    hides: int = 0
    watch_s: float = 0.0
    expected_clicks: float = 0.0  # ground truth: sum of P(examine) * p_click over served lists

    def add(self, user_id: str, reaction: Reaction, shown: int) -> None:
        """Count one served list of ``shown`` items and the reaction to it."""
        self.users.add(user_id)
        self.requests += 1
        self.impressions += shown
        self.clicks += int(reaction.clicked.sum())
        self.likes += int(reaction.liked.sum())
        self.hides += int(reaction.hidden.sum())
        self.watch_s += float(reaction.watch_s.sum())
        self.expected_clicks += float(reaction.expected_clicks.sum())

    def as_dict(self) -> dict[str, float]:
        """Counts and the rates arms are compared by."""
        users, requests = len(self.users), max(self.requests, 1)
        return {
            "users": users,
            "requests": self.requests,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "likes": self.likes,
            "hides": self.hides,
            "watch_s": round(self.watch_s, 1),
            "expected_clicks": round(self.expected_clicks, 3),
            "ctr": round(self.clicks / max(self.impressions, 1), 5),
            "clicks_per_user": round(self.clicks / max(users, 1), 4),
            "clicks_per_request": round(self.clicks / requests, 4),
            "expected_clicks_per_request": round(self.expected_clicks / requests, 4),
        }


@dataclass
class RunSummary:
    """Requests, answers, events posted and the per-arm outcome of one driver run."""

    seed: int
    requests: int = 0
    errors: int = 0
    degraded: int = 0
    error_samples: list[str] = field(default_factory=list)
    events_posted: Counter[str] = field(default_factory=Counter)
    events_failed: int = 0
    batches_posted: int = 0
    batches_failed: int = 0
    sessions: int = 0
    wall_s: float = 0.0
    arms: dict[str, ArmStats] = field(default_factory=dict)

    def error(self, message: str) -> None:
        """Count a failed request and keep its message."""
        self.errors += 1
        self.note(message)

    def note(self, message: str) -> None:
        """Keep a problem's message (the first few of a run)."""
        if len(self.error_samples) < MAX_SAMPLES:
            self.error_samples.append(message[:300])

    def arm(self, variant: str) -> ArmStats:
        """The stats of ``variant`` (created at its first answer)."""
        return self.arms.setdefault(variant, ArmStats())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "seed": self.seed,
            "sessions": self.sessions,
            "requests": self.requests,
            "errors": self.errors,
            "degraded": self.degraded,
            "error_samples": self.error_samples,
            "events_posted": dict(sorted(self.events_posted.items())),
            "events_failed": self.events_failed,
            "batches_posted": self.batches_posted,
            "batches_failed": self.batches_failed,
            "wall_s": round(self.wall_s, 2),
            "arms": {name: stats.as_dict() for name, stats in sorted(self.arms.items())},
        }


ARM_COLUMNS = ("users", "requests", "impressions", "clicks", "likes", "hides", "watch_s")
RATE_COLUMNS = ("ctr", "clicks_per_user", "clicks_per_request", "expected_clicks_per_request")


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table of a summary (``RunSummary.as_dict()``)."""
    events = ", ".join(f"{k} {v}" for k, v in summary["events_posted"].items()) or "none"
    lines = [
        f"seed {summary['seed']}: {summary['sessions']} sessions, {summary['requests']} requests "
        f"in {summary['wall_s']} s; errors {summary['errors']}, degraded {summary['degraded']}",
        f"events posted: {events}; failed {summary['events_failed']} "
        f"({summary['batches_failed']} of {summary['batches_posted'] + summary['batches_failed']}"
        " batches)",
        "",
    ]
    columns = ARM_COLUMNS + RATE_COLUMNS
    widths = [max(len(c), 8) + 2 for c in columns]
    lines.append(
        f"{'arm':<24}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    )
    for name, stats in summary["arms"].items():
        cells = (f"{stats[c]:>{w}}" for c, w in zip(columns, widths, strict=True))
        lines.append(f"{name[:24]:<24}" + "".join(cells))
    lines.extend(f"error: {e}" for e in summary["error_samples"])
    return "\n".join(lines)
