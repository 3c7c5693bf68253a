"""The controller's own Prometheus series, and what it reads of the services' series.

Exported: each rollout's state, step and shares, every decision, whether it holds (cannot
see its inputs), and the figures of its last look (guardrails, metric by arm, p-values,
shadow agreement) as ``cascade_rollout_figure{rollout, figure}``. Read: which model versions
every serving process holds (``cascade_models_held``), to know when a candidate is loaded
everywhere before traffic goes to it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from services.rollouts.metrics_source import Snapshot, models_held
from shared.models.locators import registered_name
from shared.observability.prom_text import Histogram
from shared.observability.prom_text import Snapshot as Series

if TYPE_CHECKING:
    from services.rollouts.plan import Plan
    from services.rollouts.store import Rollout

STATES = ("running", "holding", "promoted", "rolled_back", "aborted", "halted")
STATE = Gauge("cascade_rollout_state", "1 for the state each rollout is in.",
              ["rollout", "model", "state"])  # fmt: skip
STEP = Gauge("cascade_rollout_step", "Step index of each rollout (= steps: promoting).",
             ["rollout"])  # fmt: skip
SHARE = Gauge("cascade_rollout_step_share", "The current step's share, by kind.",
              ["rollout", "kind"])  # fmt: skip
DECISIONS = Counter("cascade_rollout_decisions_total", "Decisions taken.", ["decision"])
HOLDING = Gauge(
    "cascade_rollout_holding", "1 while a rollout decides nothing: it cannot see an input.",
    ["rollout"],
)  # fmt: skip
TICK_FAILURES = Counter("cascade_rollout_tick_failures_total", "Controller looks that raised.")
FIGURE = Gauge(
    "cascade_rollout_figure", "The last look's figures (guardrails, metric by arm, p-values).",
    ["rollout", "figure"],
)  # fmt: skip
HELD = "cascade_models_held"
# The part whose label a model set reports for its slot (ModelSet labels by its last part).
LABEL_PART = {"retrieval": "item_index", "ranker": "ranker"}


def publish_state(r: Rollout) -> None:
    """State, step and share gauges of one rollout."""
    for state in STATES:
        STATE.labels(r.id, r.plan.model, state).set(1 if r.state == state else 0)
    STEP.labels(r.id).set(r.step)
    step = r.current_step
    running = r.active and r.phase == "running" and step is not None
    for kind in ("shadow", "canary"):
        SHARE.labels(r.id, kind).set(step.share if running and step.kind == kind else 0.0)


def publish_figures(rollout_id: str, figures: dict[str, Any], prefix: str = "") -> None:
    """Every finite number of a look's figures, flattened (``canary.p99_ms`` ...)."""
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            publish_figures(rollout_id, value, f"{name}.")
        elif isinstance(value, bool | int | float) and math.isfinite(float(value)):
            FIGURE.labels(rollout_id, name).set(float(value))


def services_missing(snapshot: Snapshot | None, plan: Plan, alias: str) -> list[str]:
    """The serving processes that do not hold the candidate at ``alias`` yet.

    A service serves a slot when it exports any version of it; it holds the candidate when
    every instance of it holds the candidate's version at ``alias`` (``models_held``).
    """
    if snapshot is None:
        return ["(no metrics)"]
    missing = []
    for slot in plan.slots:
        part = LABEL_PART[slot]
        want = f"{registered_name(part)}/{plan.candidate[part]} "
        held = models_held(snapshot, slot, alias)
        if not held:
            missing.append(f"(no process serves {slot})")
        for service, labels in held.items():
            if not any(label.startswith(want) for label in labels):
                missing.append(f"{service} ({slot})")
    return missing


def to_json(snapshot: Snapshot, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """A snapshot as JSON (the stored baseline of a step): its histograms and counters."""
    series = snapshot.series.select(set(keep)) if keep else snapshot.series
    return {
        "source": snapshot.source,
        "missing": dict(snapshot.missing),
        "histograms": [
            [name, dict(labels), list(h.bounds), list(h.cumulative), h.sum]
            for (name, labels), h in series.histograms.items()
        ],
        "counters": [[name, dict(labels), v] for (name, labels), v in series.counters.items()],
        "gauges": [[name, dict(labels), v] for (name, labels), v in series.gauges.items()],
    }


def from_json(data: dict[str, Any]) -> Snapshot | None:
    """The snapshot ``to_json`` wrote (None when nothing was stored)."""
    if not data:
        return None
    hist = {
        (name, frozenset(labels.items())): Histogram(tuple(bounds), tuple(cum), total)
        for name, labels, bounds, cum, total in data.get("histograms", [])
    }
    counters = {
        (name, frozenset(labels.items())): float(v) for name, labels, v in data.get("counters", [])
    }
    gauges = {
        (name, frozenset(labels.items())): float(v) for name, labels, v in data.get("gauges", [])
    }
    return Snapshot(Series(hist, counters, gauges), data.get("source", ""), data.get("missing", {}))
