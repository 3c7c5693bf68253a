"""The exposure join without Kafka: served lists and events in any order, per arm and user."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from services.rollouts.exposure_join import (
    NEUTRAL_TEAM,
    ExposureJoin,
    JoinLimits,
    ServedExposure,
    UnitArrays,
    decode_served,
)
from shared.events import Event

T0 = 1_800_000_000.0
ROLLOUT = "r1"


def served(
    request_id: str,
    user: str,
    arm: str | None = "canary",
    ts: float = T0,
    failure: str | None = None,
    rollout: str = ROLLOUT,
) -> ServedExposure:
    arms = {rollout: arm} if arm is not None else {}
    return ServedExposure(request_id, user, ts, arms, failure)


def event(
    event_id: str,
    user: str,
    request_id: str | None,
    type: str = "impression",
    value: float | None = None,
    ts: float = T0 + 1,
) -> Event:
    return Event.model_validate(
        {
            "event_id": event_id,
            "user_id": user,
            "item_id": "i1",
            "type": type,
            "value": value,
            "timestamp": ts,
            "request_id": request_id,
            "position": 0,
        }
    )


def totals(units: UnitArrays) -> dict[str, tuple[int, int, int, int, float, int]]:
    """user -> (requests, impressions, clicks, likes, watch_s, canary_failures)."""
    return units.per_user()


def test_events_join_whether_they_come_before_or_after_their_served_record() -> None:
    join = ExposureJoin(ROLLOUT, since_ts=T0)
    join.add_event(event("e1", "u1", "q1"), at=T0)  # before its request was read
    join.add_event(event("e2", "u1", "q1", "click"), at=T0)
    assert join.pending_events == 2
    join.add_served(served("q1", "u1"), at=T0)
    join.add_event(event("e3", "u1", "q1", "watch", value=42.5), at=T0 + 1)  # after
    join.add_event(event("e4", "u1", "q1", "like"), at=T0 + 1)
    assert join.pending_events == 0
    assert totals(join.units("canary")) == {"u1": (1, 1, 1, 1, 42.5, 0)}
    assert join.event_outcomes == {"joined": 4}
    assert join.served_outcomes == {"counted": 1}


def test_aggregates_are_per_user_and_per_arm() -> None:
    join = ExposureJoin(ROLLOUT, since_ts=T0)
    join.add_served(served("q1", "u1", "canary", failure="ranking: timeout"), at=T0)
    join.add_served(served("q2", "u1", "canary"), at=T0)
    join.add_served(served("q3", "u2", "production", failure="another rollout's canary"), at=T0)
    for i, (rid, user) in enumerate([("q1", "u1"), ("q2", "u1"), ("q3", "u2"), ("q3", "u2")]):
        join.add_event(event(f"imp{i}", user, rid), at=T0)
    join.add_event(event("c1", "u2", "q3", "click"), at=T0)
    assert totals(join.units("canary")) == {"u1": (2, 2, 0, 0, 0.0, 1)}
    assert totals(join.units("production")) == {"u2": (1, 2, 1, 0, 0.0, 0)}
    assert join.distinct_users() == {"canary": 1, "production": 1}
    assert join.requests() == {"canary": 2, "production": 1}


def test_duplicates_count_once() -> None:
    join = ExposureJoin(ROLLOUT, since_ts=T0)
    join.add_event(event("e1", "u1", "q1", "click"), at=T0)
    join.add_event(event("e1", "u1", "q1", "click"), at=T0)  # duplicate while pending
    join.add_served(served("q1", "u1"), at=T0)
    join.add_served(served("q1", "u1"), at=T0)  # the producer retried
    join.add_event(event("e1", "u1", "q1", "click"), at=T0 + 1)  # duplicate after the join
    assert totals(join.units("canary")) == {"u1": (1, 0, 1, 0, 0.0, 0)}
    assert join.event_outcomes == {"joined": 1, "duplicate": 2}
    assert join.served_outcomes == {"counted": 1, "duplicate": 1}


def test_what_does_not_belong_to_the_rollout_is_counted_not_aggregated() -> None:
    join = ExposureJoin(ROLLOUT, since_ts=T0)
    join.add_event(event("e0", "u1", None, "click"), at=T0)  # no request id
    join.add_served(served("q1", "u1", rollout="other"), at=T0)  # another rollout's request
    join.add_event(event("e1", "u1", "q1", "click"), at=T0)
    join.add_served(served("q2", "u1", ts=T0 - 5), at=T0 - 5)  # served before since_ts
    join.add_event(event("e2", "u1", "q2", "click"), at=T0)
    join.add_served(served("q3", "u1"), at=T0)
    join.add_event(event("e3", "u1", "q3", "click", ts=T0 - 1), at=T0)  # older than since_ts
    join.add_event(event("e4", "u9", "q3", "click"), at=T0)  # another user's request id
    assert totals(join.units("canary")) == {"u1": (1, 0, 0, 0, 0.0, 0)}
    assert join.event_outcomes == {
        "no_request_id": 1,
        "outside_rollout": 1,
        "before_start": 2,
        "user_mismatch": 1,
    }
    assert join.served_outcomes == {"outside_rollout": 1, "before_start": 1, "counted": 1}


def test_a_waiting_event_expires_by_the_served_topics_progress_not_its_own() -> None:
    join = ExposureJoin(ROLLOUT, T0, JoinLimits(pending_window_s=60))
    join.add_event(event("e1", "u1", "q1", "click"), at=T0)
    # The events topic is far ahead (a rebuild reads it faster): the event still waits.
    assert join.expire(served_watermark=T0 + 30, events_watermark=T0 + 3600) == 0
    join.add_served(served("q1", "u1"), at=T0 + 30)
    assert totals(join.units("canary")) == {"u1": (1, 0, 1, 0, 0.0, 0)}

    join.add_event(event("e2", "u1", "q2", "click"), at=T0 + 40)
    assert join.expire(served_watermark=T0 + 99, events_watermark=None) == 0
    assert join.expire(served_watermark=T0 + 101, events_watermark=None) == 1
    assert join.pending_events == 0
    assert join.event_outcomes["expired_unjoined"] == 1
    join.add_served(served("q2", "u1"), at=T0 + 102)  # too late for its event
    assert totals(join.units("canary")) == {"u1": (2, 0, 1, 0, 0.0, 0)}


def test_a_served_record_is_remembered_for_the_window_of_the_events_topic() -> None:
    join = ExposureJoin(ROLLOUT, T0, JoinLimits(pending_window_s=60, dedup_window_s=60))
    join.add_served(served("q1", "u1"), at=T0)
    join.expire(served_watermark=T0 + 3600, events_watermark=T0 + 59)
    join.add_event(event("e1", "u1", "q1", "click"), at=T0 + 59)
    assert join.event_outcomes == {"joined": 1}
    join.expire(served_watermark=T0 + 3600, events_watermark=T0 + 130)
    join.add_event(event("e1", "u1", "q1", "click"), at=T0 + 130)  # dedup window over too
    assert join.pending_events == 1  # its request is forgotten: it waits, then expires
    assert join.expire(served_watermark=T0 + 200, events_watermark=T0 + 200) == 1


def test_memory_is_bounded_and_what_is_pushed_out_is_counted() -> None:
    limits = JoinLimits(max_pending_events=3, max_requests=2, max_event_ids=4)
    join = ExposureJoin(ROLLOUT, T0, limits)
    for i in range(5):
        join.add_event(event(f"e{i}", "u1", f"q{i}"), at=T0 + i)
    assert join.pending_events == 3
    assert join.event_outcomes == {"evicted_unjoined": 2}
    assert join.forgotten["event_ids"] == 1
    for i in range(3):
        join.add_served(served(f"r{i}", "u1"), at=T0)
    assert join.forgotten["requests"] == 1
    assert join.units("canary").requests.tolist() == [3]


def test_units_are_aligned_sorted_arrays_and_empty_for_an_arm_without_traffic() -> None:
    join = ExposureJoin(ROLLOUT, since_ts=T0)
    for user in ("u3", "u1", "u2"):
        join.add_served(served(f"q-{user}", user), at=T0)
    units = join.units("canary")
    assert units.user_ids.tolist() == ["u1", "u2", "u3"]
    assert units.requests.dtype == np.int64 and units.watch_s.dtype == np.float64
    empty = join.units("production")
    assert len(empty) == 0 and empty.clicks.dtype == np.int64 and empty.clicks.shape == (0,)


def test_the_result_does_not_depend_on_the_order_records_are_read() -> None:
    rng = random.Random(7)
    records: list[tuple[str, object]] = []
    expected: dict[str, list[float]] = {}
    for r in range(200):
        user = f"u{rng.randrange(40)}"
        arm = "canary" if int(user[1:]) % 2 else "production"
        records.append(("served", served(f"q{r}", user, arm)))
        row = expected.setdefault(user, [0, 0, 0, 0, 0.0, 0])
        row[0] += 1
        for pos in range(3):
            records.append(("event", event(f"q{r}:{pos}:i", user, f"q{r}")))
            row[1] += 1
        if rng.random() < 0.3:
            records.append(("event", event(f"q{r}:0:c", user, f"q{r}", "click")))
            records.append(("event", event(f"q{r}:0:w", user, f"q{r}", "watch", value=10.0)))
            row[2] += 1
            row[4] += 10.0
    results = []
    for seed in range(3):
        rng.seed(seed)
        shuffled = rng.sample(records, len(records))
        join = ExposureJoin(ROLLOUT, since_ts=T0)
        for kind, value in shuffled:
            if kind == "served":
                assert isinstance(value, ServedExposure)
                join.add_served(value, at=T0)
            else:
                assert isinstance(value, Event)
                join.add_event(value, at=T0)
        assert join.pending_events == 0
        results.append({**totals(join.units("canary")), **totals(join.units("production"))})
    assert results[0] == results[1] == results[2]
    assert results[0] == {u: tuple(row) for u, row in expected.items()}


def test_decode_served_reads_the_gateways_record_and_skips_the_rest() -> None:
    record = {
        "request_id": "q1",
        "user_id": "u1",
        "ts": T0,
        "variant": "r1-canary",
        "arms": {"r1": "canary"},
        "canary_failure": None,
        "item_ids": ["a", "b"],
        "scores": [0.5, 0.4],
        "propensity": [1.0, 1.0],
        "explored": [False, False],
        "cold_start": "returning",
        "degraded": [],
        "model_versions": {"ranker": "m/3"},
    }
    assert decode_served(orjson.dumps(record)) == ServedExposure(
        "q1", "u1", T0, {"r1": "canary"}, item_ids=["a", "b"]
    )
    with pytest.raises(ValueError, match="served record"):
        decode_served(b'{"request_id": "q1"}')
    with pytest.raises(ValueError, match="empty"):
        decode_served(None)


# ---- experiments: team credit of interleaved lists, the pre-period covariate ----------------
def click(event_id: str, user: str, request_id: str | None, item: str,
          ts: float = T0 + 1) -> Event:  # fmt: skip
    return event(event_id, user, request_id, "click", ts=ts).model_copy(update={"item_id": item})


def test_clicks_on_an_interleaved_list_are_credited_to_the_contributing_team() -> None:
    join = ExposureJoin("il", since_ts=T0)
    teams = {"a": "prod", "b": "cand", "c": "cand"}
    list_ = ServedExposure("q1", "u1", T0, {"il": "interleaved"}, None, teams=teams)
    join.add_event(click("e0", "u1", "q1", "b"), at=T0)  # before its list was read
    join.add_served(list_, at=T0)
    join.add_event(click("e1", "u1", "q1", "c"), at=T0)
    join.add_event(click("e2", "u1", "q1", "a"), at=T0)
    join.add_event(click("e3", "u1", "q1", "zz"), at=T0)  # not in the list: no team
    plain = ServedExposure("q2", "u2", T0, {"il": "interleaved"}, None)  # ranking fell back
    join.add_served(plain, at=T0)
    join.add_event(click("e4", "u2", "q2", "a"), at=T0)
    users, clicks = join.team_clicks(("prod", "cand"))
    assert users.tolist() == ["u1"] and clicks.tolist() == [[1, 2]]
    assert join.units("interleaved").clicks.tolist() == [4, 1]  # every click still counted


def test_clicks_on_neutral_items_credit_neither_team_but_are_counted() -> None:
    join = ExposureJoin("il", since_ts=T0)
    teams = {"a": "prod", "b": "cand", "c": "cand"}
    join.add_served(
        ServedExposure(
            "q1", "u1", T0, {"il": "interleaved"}, None, teams=teams, neutral=["a", "b"]
        ),
        at=T0,
    )
    for n, item in enumerate("abc"):
        join.add_event(click(f"e{n}", "u1", "q1", item), at=T0)
    users, clicks = join.team_clicks(("prod", "cand", NEUTRAL_TEAM))
    assert users.tolist() == ["u1"] and clicks.tolist() == [[0, 1, 2]]
    assert join.units("interleaved").clicks.tolist() == [3]
    record = {"request_id": "q9", "user_id": "u9", "ts": T0, "teams": teams, "neutral": ["a"]}
    assert decode_served(orjson.dumps(record)).neutral == ["a"]


def test_pre_period_events_are_each_users_covariate_and_join_nothing() -> None:
    join = ExposureJoin("exp", since_ts=T0, pre_since_ts=T0 - 3600)
    join.add_event(click("p1", "u1", "old-1", "a", ts=T0 - 100), at=T0)
    join.add_event(click("p2", "u1", None, "b", ts=T0 - 50), at=T0)  # no request id: still activity
    join.add_event(event("p3", "u2", "old-2", "impression", ts=T0 - 10), at=T0)
    join.add_event(click("p4", "u3", "older", "a", ts=T0 - 7200), at=T0)  # before the pre-period
    join.add_served(served("q1", "u1", "b", rollout="exp"), at=T0)
    join.add_event(click("e1", "u1", "q1", "a"), at=T0)
    assert join.pre_period(np.array(["u1", "u2", "u3", "u9"])).tolist() == [2.0, 0.0, 0.0, 0.0]
    assert totals(join.units("b"))["u1"][2] == 1  # only the experiment's click is joined


# ---- off-policy: a shadow's exploration slots and the clicks on them ---------------------------
def slot_record(
    request_id: str,
    user: str,
    slots: list[tuple[str, float, bool, bool]],
    rollouts: tuple[str, ...] = (ROLLOUT,),
    ts: float = T0,
) -> ServedExposure:
    rows = [{"item": i, "p": p, "candidate": c, "production": pr} for i, p, c, pr in slots]
    record = {"request_id": request_id, "user_id": user, "ts": ts,
              "off_policy": {"rollouts": list(rollouts), "slots": rows}}  # fmt: skip
    return decode_served(orjson.dumps(record))


def test_slot_records_join_their_clicks_in_any_order_and_are_not_exposures() -> None:
    join = ExposureJoin(ROLLOUT, since_ts=T0)
    join.add_served(served("q1", "u1", arm=None), at=T0)  # production's list (a shadow step)
    join.add_event(click("e0", "u2", "q2", "x"), at=T0)  # the click before its slot record
    join.add_served(slot_record("q1", "u1", [("a", 0.02, True, False), ("b", 0.02, False, True)]),
                    at=T0)  # fmt: skip
    join.add_served(slot_record("q2", "u2", [("x", 0.04, True, True)]), at=T0)
    join.add_served(slot_record("q1", "u1", [("a", 0.02, True, False)]), at=T0)  # a retry
    join.add_event(click("e1", "u1", "q1", "a"), at=T0)
    join.add_event(click("e1", "u1", "q1", "a"), at=T0)  # the same event again
    join.add_event(click("e2", "u1", "q1", "zz"), at=T0)  # not a slot item
    join.add_event(click("e3", "intruder", "q1", "b"), at=T0)  # another user: no reward
    join.add_served(slot_record("q3", "u3", [("y", 0.5, True, True)], rollouts=("other",)),
                    at=T0)  # fmt: skip
    s = join.off_policy_slots()
    assert s.propensity.tolist() == [0.02, 0.02, 0.04]
    assert s.candidate.tolist() == [1, 0, 1] and s.production.tolist() == [0, 1, 1]
    assert s.clicked.tolist() == [1, 0, 1]
    outcomes = join.served_outcomes
    assert outcomes["off_policy"] == 2 and outcomes["duplicate"] == 1  # q1's retry
    assert outcomes["outside_rollout"] == 2  # production's own list here, another rollout's
    assert join.units("canary").requests.size == 0  # a slot record is not an exposure


def test_an_early_click_waits_only_its_window_for_the_slot_record() -> None:
    join = ExposureJoin(ROLLOUT, since_ts=T0, limits=JoinLimits(pending_window_s=60))
    join.add_event(click("e0", "u1", "q1", "a"), at=T0)
    join.expire(served_watermark=T0 + 120, events_watermark=None)  # slot records read past it
    join.add_served(slot_record("q1", "u1", [("a", 0.02, True, True)], ts=T0 + 121), at=T0 + 121)
    assert join.off_policy_slots().clicked.tolist() == [0]
