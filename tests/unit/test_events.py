"""The shared event schema, its Kafka encoding and the events API's batch validation."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from pydantic import ValidationError

from services.events.validation import BatchValidator, InvalidBatchError
from shared.events import (
    Event,
    EventBatch,
    MalformedEventError,
    decode_event,
    encode_dead_letter,
    encode_event,
    validation_context,
)
from shared.stream import topics


def event(**overrides: object) -> dict[str, object]:
    """A valid event as JSON-ready dict."""
    base: dict[str, object] = {
        "event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "click",
        "timestamp": time.time(),
    }  # fmt: skip
    return {**base, **overrides}


def locs(exc: InvalidBatchError) -> list[list[object]]:
    """The error locations of a rejected batch."""
    return [err["loc"] for err in exc.errors]


def test_topic_names() -> None:
    assert (topics.EVENTS, topics.SERVED, topics.EVENTS_DLQ) == ("events", "served", "events.dlq")


def test_encode_decode_round_trip_with_accepted_ts() -> None:
    e = Event.model_validate(event(type="watch", value=31.5, request_id="r", position=3))
    data = encode_event(e, accepted_ts=123.5)
    back = decode_event(data)
    assert back.accepted_ts == 123.5
    assert back.model_copy(update={"accepted_ts": None}) == e
    assert b"null" not in data  # unset optional fields are left out, not sent as null


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (b"not json", "message"),
        (b"[1, 2]", "message"),
        (b"", "message"),
        (orjson.dumps(event(type="purchase")), "type"),
        (orjson.dumps({k: v for k, v in event().items() if k != "user_id"}), "user_id"),
        (orjson.dumps(event(event_id="")), "event_id"),
        (orjson.dumps(event(timestamp="yesterday")), "timestamp"),
    ],
    # fixed ids: the events carry the clock, and pytest-xdist's workers must collect alike
    ids=["not-json", "not-an-object", "empty", "unknown-type", "no-user", "empty-id", "bad-ts"],
)
def test_decode_names_the_bad_field(message: bytes, field: str) -> None:
    with pytest.raises(MalformedEventError) as info:
        decode_event(message)
    assert info.value.reason.startswith(field)
    assert isinstance(info.value, ValueError)


def test_decode_ignores_unknown_fields_for_forward_compatibility() -> None:
    assert decode_event(orjson.dumps(event(new_field=1))).event_id == "e1"


def test_batch_limit_and_future_timestamps_come_from_the_context() -> None:
    now = 1_700_000_000.0
    ctx = validation_context(max_batch=2, max_future_s=60, now=now)
    EventBatch.model_validate({"events": [event(timestamp=now + 59)]}, context=ctx)
    with pytest.raises(ValidationError) as info:
        EventBatch.model_validate({"events": [event(timestamp=now + 61)]}, context=ctx)
    assert info.value.errors()[0]["loc"] == ("events", 0, "timestamp")
    with pytest.raises(ValidationError) as info:
        EventBatch.model_validate({"events": [event()] * 3}, context=ctx)
    assert info.value.errors()[0]["loc"] == ("events",)
    assert "limit of 2" in info.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    ("overrides", "loc", "says"),
    [
        ({"timestamp": 5e-324}, ["timestamp"], "earliest"),  # 1970: before the epoch setting
        ({"timestamp": 946_684_799.0}, ["timestamp"], "earliest"),  # 1 s before 2000-01-01
        ({"timestamp": "1700000000"}, ["timestamp"], "number"),  # a string is not a number
        ({"accepted_ts": False}, ["accepted_ts"], "stamped by the events API"),
        ({"accepted_ts": 1_700_000_000.0}, ["accepted_ts"], "stamped by the events API"),
        ({"position": 2_147_483_648}, ["position"], "2147483647"),  # int32 (was a poison record)
        ({"position": False}, ["position"], "integer"),
        ({"position": "3"}, ["position"], "integer"),
        ({"position": 2.5}, ["position"], "integer"),
        ({"type": "rate", "value": 1e308}, [], "value"),  # would overflow a rating sum
        ({"type": "rate", "value": 11.0}, [], "value"),
        ({"type": "watch", "value": -1.0}, [], "value"),
        ({"type": "watch", "value": True}, ["value"], "number"),
    ],
)
def test_event_fields_are_bounded_naming_the_field(
    overrides: dict[str, object], loc: list[str], says: str
) -> None:
    with pytest.raises(InvalidBatchError) as info:
        BatchValidator(10, 300).parse(orjson.dumps({"events": [event(**overrides)]}))
    err = info.value.errors[0]
    assert err["loc"] == ["body", "events", 0, *loc]
    assert says in err["msg"]


def test_values_and_positions_within_their_ranges_are_accepted() -> None:
    good = [
        event(type="rate", value=5),
        event(type="watch", value=86_400.0, position=2_147_483_647),
        event(position=3.0),  # JSON Schema's integer: 3.0 is one
        event(timestamp=946_684_800.0),
    ]
    batch = BatchValidator(10, 300).parse(orjson.dumps({"events": good}))
    assert [e.position for e in batch.events] == [None, 2_147_483_647, 3, None]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinity_are_refused_by_the_api_and_by_consumers(literal: bytes) -> None:
    raw = orjson.dumps(event(type="watch", value=1.5)).replace(
        b'"value":1.5', b'"value":' + literal
    )
    with pytest.raises(InvalidBatchError) as info:  # orjson refuses the literal outright
        BatchValidator(10, 300).parse(b'{"events": [' + raw + b"]}")
    assert locs(info.value) == [["body"]]
    with pytest.raises(MalformedEventError) as bad:  # pydantic's parser reads it, then refuses
        decode_event(raw)
    assert bad.value.reason.startswith("value")
    with pytest.raises(ValidationError):  # and the model itself (Python's json reads NaN)
        Event.model_validate(event(type="watch", value=float(literal.decode())))


def test_the_epoch_is_a_setting() -> None:
    old = event(timestamp=900_000_000.0)  # 1998
    with pytest.raises(InvalidBatchError):
        BatchValidator(10, 300).parse(orjson.dumps({"events": [old]}))
    batch = BatchValidator(10, 300, min_timestamp=0).parse(orjson.dumps({"events": [old]}))
    assert batch.events[0].timestamp == 900_000_000.0


def test_validator_reports_field_and_index_of_every_bad_event() -> None:
    validator = BatchValidator(max_batch=10, max_future_s=300)
    body = orjson.dumps(
        {
            "events": [
                event(),
                {k: v for k, v in event().items() if k != "event_id"},
                event(type="purchase"),
                event(timestamp=time.time() + 3600),
                event(position=-1),
            ]
        }
    )
    with pytest.raises(InvalidBatchError) as info:
        validator.parse(body)
    assert locs(info.value) == [
        ["body", "events", 1, "event_id"],
        ["body", "events", 2, "type"],
        ["body", "events", 3, "timestamp"],
        ["body", "events", 4, "position"],
    ]
    assert info.value.n_events == 5
    assert all("input" not in err for err in info.value.errors)  # a bad batch is not echoed


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b"{", ["body"]),
        (b"[]", ["body"]),
        (b'{"events": []}', ["body", "events"]),
        (b'{"events": "x"}', ["body", "events"]),
        (b'{"events": [], "extra": 1}', ["body", "events"]),
    ],
)
def test_validator_rejects_malformed_bodies(body: bytes, loc: list[object]) -> None:
    with pytest.raises(InvalidBatchError) as info:
        BatchValidator(10, 300).parse(body)
    assert locs(info.value)[0] == loc


def test_oversized_batch_is_rejected_before_its_events_are_validated() -> None:
    body = orjson.dumps({"events": [{"junk": k} for k in range(11)]})
    with pytest.raises(InvalidBatchError) as info:
        BatchValidator(10, 300).parse(body)
    assert locs(info.value) == [["body", "events"]]
    assert "exceeds the limit of 10" in info.value.errors[0]["msg"]


def test_dead_letter_envelope_keeps_reason_origin_and_exact_bytes() -> None:
    raw = b"\xff\xfenot an event"
    letter = orjson.loads(
        encode_dead_letter(
            raw,
            "message: bad",
            source="offline-sink",
            topic="events",
            partition=2,
            offset=7,
            key=b"u1",
        )  # fmt: skip
    )
    assert letter["reason"] == "message: bad"
    assert (letter["source"], letter["topic"], letter["partition"], letter["offset"]) == (
        "offline-sink", "events", 2, 7,
    )  # fmt: skip
    assert letter["key"] == "u1"
    assert base64.b64decode(letter["value_b64"]) == raw


def test_consumers_can_reject_far_future_timestamps_as_the_api_does() -> None:
    ahead = orjson.dumps(event(timestamp=time.time() + 3600))
    assert decode_event(ahead).event_id == "e1"  # no limit: anything positive and finite
    with pytest.raises(MalformedEventError) as info:
        decode_event(ahead, max_future_s=300)
    assert info.value.reason.startswith("timestamp: Value error, lies more than 300 s")
    assert decode_event(orjson.dumps(event(timestamp=time.time() + 10)), max_future_s=300)


def test_stream_consumers_take_group_timings_platform_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.ingest.settings import Settings as IngestSettings
    from services.offline_sink.settings import Settings as SinkSettings
    from shared.platform.settings import load_settings

    monkeypatch.setenv("CASCADE_KAFKA_SESSION_TIMEOUT_MS", "6000")
    monkeypatch.setenv("CASCADE_KAFKA_HEARTBEAT_INTERVAL_MS", "2000")
    monkeypatch.setenv("CASCADE_OFFLINE_SINK_SESSION_TIMEOUT_MS", "7000")  # the service's own wins
    ingest, sink = load_settings(IngestSettings), load_settings(SinkSettings)
    assert (ingest.session_timeout_ms, ingest.heartbeat_interval_ms) == (6000, 2000)
    assert (sink.session_timeout_ms, sink.heartbeat_interval_ms) == (7000, 2000)


def test_consumers_take_what_decodes_and_leave_ranges_to_their_handlers() -> None:
    """The ranges are the API's: a record another producer wrote with a rating of 1e308 or a
    position past int32 still decodes (the ingest script and the sink's dead letters deal
    with it), while types and finiteness hold for consumers too."""
    big = decode_event(orjson.dumps(event(type="rate", value=1e308, position=2_147_483_648)))
    assert (big.value, big.position) == (1e308, 2_147_483_648)
    with pytest.raises(MalformedEventError) as info:
        decode_event(orjson.dumps(event(position="3")))
    assert info.value.reason.startswith("position")
