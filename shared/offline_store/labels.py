"""Training labels from the event log: what a served item led to.

The log's own events are labels too (``build_training_set`` takes them by type), but a ranker
learns from impressions: shown items, each with whether the user then acted on it. An
impression's label looks *forward* (events after it); its features look *back* (strictly
before it), so no label can leak into its own features.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from shared.offline_store.sources import EventSource, connect

DEFAULT_OUTCOMES: tuple[str, ...] = ("click", "watch", "like")


def impression_labels(
    source: EventSource,
    outcomes: Sequence[str] = DEFAULT_OUTCOMES,
    horizon_s: float = 3600.0,
    start: float | None = None,
    end: float | None = None,
) -> pa.Table:
    """One row per impression with ``start <= timestamp < end`` (bounds optional).

    Columns: the impression's ``event_id``, ``user_id``, ``item_id``, ``timestamp``,
    ``request_id``, ``position``, then ``label_<outcome>`` (int8, 1 when the same user had an
    event of that type on the same item within ``[timestamp, timestamp + horizon_s)``) and
    ``label_any`` (any of them). Outcomes are looked up in the whole log, also past ``end``.
    Rows are ordered by timestamp, then event_id.
    """
    if horizon_s <= 0:
        raise ValueError(f"horizon_s must be positive, got {horizon_s}")
    kinds = [str(o) for o in dict.fromkeys(outcomes)]
    if not kinds:
        raise ValueError("at least one outcome type is needed")
    con = connect(source)
    try:
        query = con.sql(_sql(kinds, start, end), params=_params(kinds, horizon_s, start, end))
        return query.to_arrow_table()
    finally:
        con.close()


def _sql(kinds: list[str], start: float | None, end: float | None) -> str:
    flags = ",\n".join(
        f"max(CASE WHEN o.type = ? THEN 1 ELSE 0 END)::TINYINT AS label_{_column(k)}" for k in kinds
    )
    where = ["i.type = 'impression'"]
    if start is not None:
        where.append("i.timestamp >= ?")
    if end is not None:
        where.append("i.timestamp < ?")
    return f"""
SELECT i.event_id, i.user_id, i.item_id, i.timestamp, i.request_id, i.position,
{flags},
max(CASE WHEN o.event_id IS NOT NULL THEN 1 ELSE 0 END)::TINYINT AS label_any
FROM events i
LEFT JOIN events o
  ON o.user_id = i.user_id AND o.item_id = i.item_id AND list_contains(?, o.type)
 AND o.timestamp >= i.timestamp AND o.timestamp < i.timestamp + ?
WHERE {" AND ".join(where)}
GROUP BY ALL
ORDER BY i.timestamp, i.event_id
"""


def _params(
    kinds: list[str], horizon_s: float, start: float | None, end: float | None
) -> list[object]:
    params: list[object] = [*kinds, kinds, horizon_s]
    params += [b for b in (start, end) if b is not None]
    return params


def _column(kind: str) -> str:
    """A safe column suffix (event types are identifiers already; anything else is refused)."""
    if not kind.isidentifier():
        raise ValueError(f"not an event type: {kind!r}")
    return kind
