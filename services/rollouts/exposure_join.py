"""ExposureJoin: served lists joined with user events by request id, per arm and user (no Kafka).

The rollout analysis counts, per user of each arm, what was served (requests, canary failures)
and what the user did with it (impressions, clicks, likes, watch seconds). Served records and
events come on different topics from different producers, so either may come first: an event
whose request is unknown yet waits (bounded in time and count) and is attached when its served
record arrives; a served record is remembered for the same window so its later events attach.

Time here is *stream time*, the record timestamps the caller passes (``at``), and expiry is
driven by the *other* topic's watermark (``expire``): an event waits until the served topic has
passed its time plus the window, whatever the wall clock says. So a rebuild that reads hours of
history in seconds, one topic ahead of the other, joins exactly as the live read did.

Nothing is dropped silently: every record ends in one outcome of ``served_outcomes`` or
``event_outcomes`` (see :data:`EVENT_OUTCOMES`), which ExposureLog exports as metrics.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

from services.rollouts.list_stats import ListStats
from services.rollouts.off_policy_join import OffPolicyRecord, OffPolicySlots, SlotArrays
from services.rollouts.time_window import drop_before
from shared.events import Event

EVENT_OUTCOMES = (
    "joined",  # attached to a served record of a tracked arm (counted in the aggregates)
    "duplicate",  # an event id seen within the dedup window: counted once
    "no_request_id",  # no request id: cannot belong to a rollout's exposure
    "before_start",  # the event, or the request it belongs to, is older than since_ts
    "outside_rollout",  # its request ran outside this rollout (its arms do not name it)
    "user_mismatch",  # its request was served to another user: not credited to anyone
    "expired_unjoined",  # waited the whole window, its served record never came
    "evicted_unjoined",  # pushed out of the pending buffer by the count bound, never joined
    "malformed",  # not a decodable event (counted by the caller, which decodes)
    "failed",  # handling raised unexpectedly (counted by the caller, logged with the offset)
)
"""Where every event ends (the label values of the events metric)."""

SERVED_OUTCOMES = (
    "counted",  # a request of a tracked arm: counted in the aggregates
    "duplicate",  # a request id seen before (the producer retried): counted once
    "before_start",  # served before since_ts (read only so its events are recognised)
    "outside_rollout",  # its arms do not name this rollout
    "off_policy",  # a shadow's exploration-slot record of this rollout (off_policy_slots)
    "malformed",  # not a decodable served record (counted by the caller)
    "failed",  # handling raised unexpectedly (counted by the caller)
)
"""Where every served record ends (the label values of the served metric)."""

_V = TypeVar("_V")
_REQUESTS, _IMPRESSIONS, _CLICKS, _LIKES, _WATCH_S, _CANARY_FAILURES = range(6)
_EVENT_COLUMN = {"impression": _IMPRESSIONS, "click": _CLICKS, "like": _LIKES}


class ServedExposure(msgspec.Struct, frozen=True):
    """The fields of a ``served`` record the join needs (scores and propensities are skipped
    unparsed)."""

    request_id: str
    user_id: str
    ts: float
    arms: dict[str, str] = {}
    canary_failure: str | None = None
    teams: dict[str, str] | None = None  # interleaving: item -> the arm that contributed it
    neutral: list[str] | None = None  # interleaving: items whose clicks credit neither arm
    off_policy: OffPolicyRecord | None = None  # a shadow's slot record, not an exposure
    item_ids: list[str] = []  # the list, for its arm's catalog coverage
    genre_diversity: float | None = None
    latency_ms: float | None = None


_SERVED_DECODER = msgspec.json.Decoder(ServedExposure)


def decode_served(data: bytes | None) -> ServedExposure:
    """Parse a ``served`` message value; raises ValueError naming what is wrong."""
    if not data:
        raise ValueError("served record: empty value")
    try:
        return _SERVED_DECODER.decode(data)
    except msgspec.DecodeError as exc:  # a ValidationError is a DecodeError too
        raise ValueError(f"served record: {exc}") from None


@dataclass(frozen=True)
class JoinLimits:
    """How long and how much the join keeps (bounded memory whatever the traffic)."""

    pending_window_s: float = 600.0
    dedup_window_s: float = 600.0
    max_pending_events: int = 100_000
    max_requests: int = 500_000
    max_event_ids: int = 500_000


@dataclass(frozen=True)
class UnitArrays:
    """Per-user totals of one arm, aligned by user (sorted by user id): the units of analysis.

    A ratio metric such as clicks per impression is ``clicks.sum() / impressions.sum()`` with
    the user-level delta-method variance computed from these arrays. ``canary_failures``: this
    arm's requests the canary failed (production answered), so only the canary arm has any. A
    user whose arm changed within the tracked span (a ramp published while requests were in
    flight) is a unit of both arms.
    """

    user_ids: NDArray[np.str_]
    requests: NDArray[np.int64]
    impressions: NDArray[np.int64]
    clicks: NDArray[np.int64]
    likes: NDArray[np.int64]
    watch_s: NDArray[np.float64]
    canary_failures: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.user_ids)

    def per_user(self) -> dict[str, tuple[int, int, int, int, float, int]]:
        """user -> (requests, impressions, clicks, likes, watch_s, canary_failures)."""
        columns = (self.requests, self.impressions, self.clicks, self.likes, self.watch_s,
                   self.canary_failures)  # fmt: skip
        return {
            str(u): (int(r), int(i), int(c), int(lk), float(w), int(f))
            for u, r, i, c, lk, w, f in zip(self.user_ids, *columns, strict=True)
        }

    @classmethod
    def from_totals(
        cls, requests: ArrayLike, impressions: ArrayLike, clicks: ArrayLike, likes: ArrayLike,
        watch_s: ArrayLike,
    ) -> UnitArrays:  # fmt: skip
        """Units from per-user totals alone (simulated users: ids and canary failures unused)."""
        n = len(np.asarray(requests))
        return cls(
            np.array([f"u{i}" for i in range(n)]), np.asarray(requests, np.int64),
            np.asarray(impressions, np.int64), np.asarray(clicks, np.int64),
            np.asarray(likes, np.int64), np.asarray(watch_s, np.float64), np.zeros(n, np.int64),
        )  # fmt: skip


# What the join remembers of a served request: the arm and user it is credited to, or why not;
# and for an interleaved list, item -> the team that contributed it (NEUTRAL_TEAM for an item
# both rankers proposed in one round: its clicks are counted, but credit neither arm).
_Credit = tuple[str, str] | str
_Teams = dict[str, str] | None
NEUTRAL_TEAM = ""  # no arm is named "" (plan.py checks names)


def _credited_teams(served: ServedExposure) -> _Teams:
    """Item -> the team a click on it credits, for an interleaved list (else None)."""
    if not served.teams:
        return None
    neutral = set(served.neutral or ())
    return {item: NEUTRAL_TEAM if item in neutral else t for item, t in served.teams.items()}


@dataclass(slots=True)
class _Waiting:
    """Events of one request id whose served record has not been read yet."""

    at: float
    events: list[Event] = field(default_factory=list)


class ExposureJoin:
    """Joins one rollout's (or experiment's) served records and events into per-arm, per-user
    totals.

    Feed it ``add_served`` / ``add_event`` with each record's stream time, and ``expire`` with
    each topic's watermark after every batch. Not thread-safe: the owner serialises calls.

    Two extras for experiments: a click on an item of an interleaved list is credited to the
    team (arm) that contributed the item (``team_clicks``), and with ``pre_since_ts`` each
    user's events between it and ``since_ts`` are counted as pre-period activity
    (``pre_period``: the CUPED covariate), not joined to any request.
    """

    def __init__(self, rollout_id: str, since_ts: float, limits: JoinLimits | None = None,
                 pre_since_ts: float | None = None) -> None:  # fmt: skip
        self.rollout_id = rollout_id
        self.since_ts = since_ts
        self.pre_since_ts = pre_since_ts
        self._pre: dict[str, list[float]] = {}  # user -> [events, clicks] before since_ts
        self._team_clicks: dict[str, Counter[str]] = {}  # user -> team -> credited clicks
        # Novelty: requests and clicks by arm and whole days since the user's first exposure.
        self._first_seen: dict[str, float] = {}
        self._by_day: dict[tuple[str, int], list[int]] = {}
        self.limits = limits or JoinLimits()
        self.served_outcomes: Counter[str] = Counter()
        self.event_outcomes: Counter[str] = Counter()
        # Remembered requests / event ids dropped early by the count bounds: not data loss, but
        # a later event of such a request goes unjoined, a later duplicate counts twice.
        self.forgotten: Counter[str] = Counter()
        self._requests: OrderedDict[str, tuple[float, _Credit, _Teams, int]] = OrderedDict()
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()
        self._pending_count = 0
        self._event_ids: OrderedDict[str, float] = OrderedDict()
        self._totals: dict[str, dict[str, list[float]]] = {}
        self.lists = ListStats()  # coverage, diversity and latency per arm
        self.off_policy = OffPolicySlots(self.limits.pending_window_s, self.limits.max_requests,
                                         self.limits.max_pending_events)  # fmt: skip

    @property
    def pending_events(self) -> int:
        """Events waiting for their served record."""
        return self._pending_count

    def add_served(self, served: ServedExposure, at: float) -> None:
        """A served record read at stream time ``at``; attaches the events that waited for it."""
        if served.off_policy is not None:
            if self.rollout_id not in served.off_policy.rollouts or served.ts < self.since_ts:
                self.served_outcomes["outside_rollout"] += 1
            elif self.off_policy.add_record(served.request_id, served.user_id,
                                            served.off_policy, at):  # fmt: skip
                self.served_outcomes["off_policy"] += 1
            else:
                self.served_outcomes["duplicate"] += 1
            return
        if served.request_id in self._requests:
            self.served_outcomes["duplicate"] += 1
            return
        credit = self._credit(served)
        teams = _credited_teams(served) if isinstance(credit, tuple) else None
        day = 0
        if isinstance(credit, tuple):
            first = self._first_seen.setdefault(credit[1], served.ts)
            day = max(0, int((served.ts - first) // 86_400))
            self._by_day.setdefault((credit[0], day), [0, 0])[0] += 1
        self._requests[served.request_id] = (at, credit, teams, day)
        if len(self._requests) > self.limits.max_requests:
            self._requests.popitem(last=False)
            self.forgotten["requests"] += 1
        if isinstance(credit, tuple):
            arm, user_id = credit
            row = self._row(arm, user_id)
            row[_REQUESTS] += 1
            # As the gateway charges it: a failure is the canary's, and only its arm's (a
            # production user of this rollout may be a canary user of another one).
            row[_CANARY_FAILURES] += served.canary_failure is not None and arm == "canary"
            self.lists.add(arm, served.item_ids, served.genre_diversity, served.latency_ms)
        waiting = self._waiting.pop(served.request_id, None)
        if waiting is not None:
            self._pending_count -= len(waiting.events)
            for event in waiting.events:
                self._attach(event, credit, teams, day)

    def _credit(self, served: ServedExposure) -> _Credit:
        arm = served.arms.get(self.rollout_id)
        credit: _Credit
        if served.ts < self.since_ts:
            credit = "before_start"
        elif arm is None:
            credit = "outside_rollout"
        else:
            credit = (arm, served.user_id)
        self.served_outcomes[credit if isinstance(credit, str) else "counted"] += 1
        return credit

    def add_event(self, event: Event, at: float) -> None:
        """An event read at stream time ``at``: attached now, or kept until its request comes."""
        if self.pre_since_ts is not None and self.pre_since_ts <= event.timestamp < self.since_ts:
            # activity, whatever request it answered (a retried event may count twice here:
            # harmless in a covariate, and the dedup window is for the joined counts)
            pre = self._pre.setdefault(event.user_id, [0.0, 0.0])
            pre[0] += 1
            pre[1] += event.type == "click"
        if event.request_id is None:
            self.event_outcomes["no_request_id"] += 1
            return
        if event.event_id in self._event_ids:
            self.event_outcomes["duplicate"] += 1
            return
        self._event_ids[event.event_id] = at
        if len(self._event_ids) > self.limits.max_event_ids:
            self._event_ids.popitem(last=False)
            self.forgotten["event_ids"] += 1
        if event.timestamp < self.since_ts:
            self.event_outcomes["before_start"] += 1
            return
        if event.type == "click":
            self.off_policy.add_click(event.request_id, event.user_id, event.item_id, at)
        known = self._requests.get(event.request_id)
        if known is not None:
            self._attach(event, known[1], known[2], known[3])
            return
        self._wait(event, at)

    def _wait(self, event: Event, at: float) -> None:
        assert event.request_id is not None  # checked by add_event
        waiting = self._waiting.get(event.request_id)
        if waiting is None:
            waiting = self._waiting[event.request_id] = _Waiting(at)
        waiting.events.append(event)
        self._pending_count += 1
        while self._pending_count > self.limits.max_pending_events:
            _, oldest = self._waiting.popitem(last=False)
            self._pending_count -= len(oldest.events)
            self.event_outcomes["evicted_unjoined"] += len(oldest.events)

    def _attach(self, event: Event, credit: _Credit, teams: _Teams = None, day: int = 0) -> None:
        if isinstance(credit, str):  # before_start or outside_rollout, as its request
            self.event_outcomes[credit] += 1
            return
        arm, user_id = credit
        if event.user_id != user_id:
            self.event_outcomes["user_mismatch"] += 1
            return
        self.event_outcomes["joined"] += 1
        row = self._row(arm, user_id)
        column = _EVENT_COLUMN.get(event.type)
        if column is not None:
            row[column] += 1
            if column == _CLICKS:
                self._by_day.setdefault((arm, day), [0, 0])[1] += 1
                if teams is not None and event.item_id in teams:
                    self._team_clicks.setdefault(user_id, Counter())[teams[event.item_id]] += 1
        elif event.type == "watch":
            row[_WATCH_S] += event.value or 0.0
        # rate, hide, report: joined (so not "lost"), but no rollout metric reads them yet

    def _row(self, arm: str, user_id: str) -> list[float]:
        users = self._totals.setdefault(arm, {})
        row = users.get(user_id)
        if row is None:
            row = users[user_id] = [0.0] * 6
        return row

    def expire(self, served_watermark: float | None, events_watermark: float | None) -> int:
        """Forget what the window has passed; returns how many events expired unjoined.

        ``served_watermark``: stream time up to which every served record has been read (the
        waiting events older than it minus the window will never join); ``events_watermark``
        likewise for events (requests and event ids older than it minus the window are done
        with). None: that topic's progress is unknown, so nothing depending on it expires.
        Entries are kept in arrival order, which is time order up to the producers' batching,
        so an entry out of order stays at most a little longer.
        """
        expired = 0
        self.off_policy.expire(served_watermark, events_watermark)
        if served_watermark is not None:
            cutoff = served_watermark - self.limits.pending_window_s
            while self._waiting:
                request_id, waiting = next(iter(self._waiting.items()))
                if waiting.at >= cutoff:
                    break
                del self._waiting[request_id]
                expired += len(waiting.events)
            if expired:
                self._pending_count -= expired
                self.event_outcomes["expired_unjoined"] += expired
        if events_watermark is not None:
            window, dedup = self.limits.pending_window_s, self.limits.dedup_window_s
            drop_before(self._requests, events_watermark - window, lambda entry: entry[0])
            drop_before(self._event_ids, events_watermark - dedup, float)
        return expired

    def units(self, arm: str) -> UnitArrays:
        """Per-user totals of ``arm`` (empty arrays for an arm without traffic)."""
        users = self._totals.get(arm, {})
        ids = sorted(users)
        table = np.array([users[u] for u in ids], dtype=np.float64).reshape(len(ids), 6)
        counts = table.astype(np.int64)
        return UnitArrays(
            user_ids=np.array(ids, dtype=np.str_),
            requests=counts[:, _REQUESTS],
            impressions=counts[:, _IMPRESSIONS],
            clicks=counts[:, _CLICKS],
            likes=counts[:, _LIKES],
            watch_s=table[:, _WATCH_S],
            canary_failures=counts[:, _CANARY_FAILURES],
        )

    def team_clicks(self, teams: tuple[str, ...]) -> tuple[NDArray[np.str_], NDArray[np.int64]]:
        """Users of interleaved lists and their credited clicks per team (columns: ``teams``;
        ``NEUTRAL_TEAM`` counts the clicks on neutral items)."""
        ids = sorted(self._team_clicks)
        clicks = np.array(
            [[self._team_clicks[u][t] for t in teams] for u in ids], dtype=np.int64
        ).reshape(len(ids), len(teams))
        return np.array(ids, dtype=np.str_), clicks

    def by_day(self) -> dict[str, dict[int, tuple[int, int]]]:
        """Arm -> whole days since each user's first exposure -> (requests, clicks)."""
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for (arm, day), (requests, clicks) in sorted(self._by_day.items()):
            out.setdefault(arm, {})[day] = (requests, clicks)
        return out

    def pre_period(self, user_ids: NDArray[np.str_]) -> NDArray[np.float64]:
        """Clicks of each user between ``pre_since_ts`` and ``since_ts`` (0: none seen)."""
        return np.array([self._pre.get(str(u), (0.0, 0.0))[1] for u in user_ids], np.float64)

    def list_figures(self, arm: str) -> dict[str, Any]:
        """Coverage, diversity and latency of ``arm``'s lists (ListStats.figures)."""
        return self.lists.figures(arm)

    def off_policy_slots(self) -> SlotArrays:
        """The shadow's exploration slots and their clicks (OffPolicySlots.arrays)."""
        return self.off_policy.arrays()

    def distinct_users(self) -> dict[str, int]:
        """Users seen per arm."""
        return {arm: len(users) for arm, users in self._totals.items()}

    def requests(self) -> dict[str, int]:
        """Served requests per arm."""
        return {
            arm: int(sum(row[_REQUESTS] for row in users.values()))
            for arm, users in self._totals.items()
        }
