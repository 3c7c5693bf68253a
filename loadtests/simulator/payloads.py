"""The events a real client would post for one reaction (the ``shared.events.Event`` schema).

Logged: an ``impression`` for every shown item (a client that renders the list logs it; whether
the user examined it stays hidden, as in real logs, so position bias shows in click-through by
position), then per clicked item a ``click``, a ``watch`` whose value is the dwell in seconds and
maybe a ``like``, and a ``hide`` for hidden items. Timestamps are the answer's arrival plus
reading time (``scan_s`` per position down to the item). Time is compressed for the watch: it
is reported ``watch_report_s`` after its click with the whole dwell in ``value``, not ``dwell``
seconds later (the events API rejects timestamps more than 300 s ahead, and a run would wait).
Event ids are ``<request_id>:<position>:<type>``: unique per served list, the same for the same
answers, so a retried batch is deduplicated downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadtests.simulator.behaviour import Reaction
from loadtests.simulator.settings import BehaviourSettings


def reaction_events(
    reaction: Reaction,
    item_ids: Sequence[str],
    user_id: str,
    request_id: str,
    t0: float,
    timing: BehaviourSettings,
) -> list[dict[str, Any]]:
    """The event dicts for one list (``reaction`` of shape (1, >= len(item_ids)))."""
    out: list[dict[str, Any]] = []

    def add(pos: int, kind: str, ts: float, value: float | None = None) -> None:
        event = {
            "event_id": f"{request_id}:{pos}:{kind}",
            "user_id": user_id,
            "item_id": item_ids[pos],
            "type": kind,
            "timestamp": round(ts, 3),
            "request_id": request_id,
            "position": pos,
        }
        if value is not None:
            event["value"] = value
        out.append(event)

    clicked, liked, hidden = reaction.clicked[0], reaction.liked[0], reaction.hidden[0]
    for pos in range(len(item_ids)):
        add(pos, "impression", t0)
        seen_at = t0 + timing.scan_s * (pos + 1)
        if clicked[pos]:
            add(pos, "click", seen_at)
            add(
                pos,
                "watch",
                seen_at + timing.watch_report_s,
                round(float(reaction.watch_s[0, pos]), 1),
            )
            if liked[pos]:
                add(pos, "like", seen_at + timing.like_after_s)
        elif hidden[pos]:
            add(pos, "hide", seen_at)
    return out
