"""The candidate frame and its codec, the request context and the knobs: round trips in both
encodings, and every check a body must pass (each failure names its field)."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from services.reranking.rerankers.mmr_reranker import MMRKnobs, MMRReranker
from shared.frame import Frame, FrameCodec, FrameError, JsonFrame, WireError, WireFrame
from shared.pipeline.columns import CATALOG, column
from shared.pipeline.context import RequestContext, UserContext, VariantSpec
from shared.pipeline.knobs import KnobError, KnobTable
from shared.pipeline.synthetic import synthetic_frame

IDS = [str(i) for i in range(1, 41)]


def codec() -> FrameCodec:
    return FrameCodec(CATALOG)


def frame_with(**cols: object) -> Frame:
    return Frame(IDS[:3], cols)  # type: ignore[arg-type]


def test_frame_take_select_update() -> None:
    f = Frame(["a", "b", "c"], {"x": np.array([1.0, 2.0, 3.0]), "t": ["p", "q", "r"]})
    picked = f.take(np.array([2, 0]))
    assert picked.ids == ["c", "a"] and picked["x"].tolist() == [3.0, 1.0]
    assert picked.text("t") == ["r", "p"]
    assert list(f.select(["t"])) == ["t"]
    f.update(Frame(f.ids, {"y": np.zeros(3)}))
    assert set(f) == {"x", "t", "y"}
    with pytest.raises(FrameError, match="has 2 rows, the frame 3"):
        f.set("z", np.zeros(2))
    with pytest.raises(FrameError, match="holds strings"):
        f["t"]
    with pytest.raises(FrameError, match="no column 'nope'"):
        f["nope"]


def test_binary_round_trip_keeps_every_column_exactly() -> None:
    frame = synthetic_frame(IDS)
    frame.set("source_two_tower", np.where(np.arange(len(IDS)) % 2, np.nan, 0.5).astype(np.float32))
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(codec().to_wire(frame)), type=WireFrame)
    back = codec().from_wire(wire)
    assert back.ids == frame.ids and set(back) == set(frame)
    for name in frame:
        a, b = frame.columns[name], back.columns[name]
        if isinstance(a, list):
            assert a == b
        else:
            assert np.asarray(b).dtype == np.dtype(column(name).dtype)
            np.testing.assert_array_equal(np.asarray(a, dtype=np.asarray(b).dtype), b)


def test_json_round_trip_writes_unknown_years_as_null() -> None:
    frame = synthetic_frame(IDS[:3])
    frame.columns["release_year"] = np.array([1990.0, np.nan, 2001.0])
    raw = msgspec.json.encode(codec().to_json(frame))
    assert b"null" in raw
    back = codec().from_json(msgspec.json.decode(raw, type=JsonFrame))
    assert math.isnan(back["release_year"][1]) and back["release_year"][0] == 1990.0
    np.testing.assert_array_equal(back["counts"], frame["counts"])


def _bad_binary(
    frame: Frame, name: str, data: bytes | None = None, dtype: str | None = None
) -> WireFrame:
    wire = codec().to_wire(frame)
    col = wire.columns[name]
    col.data = data if data is not None else col.data
    col.dtype = dtype or col.dtype
    return wire


@pytest.mark.parametrize(
    ("cols", "where", "binary", "json"),
    [
        ({"like_count": np.array([1.0, np.nan, 2.0])}, "like_count", "NaN or infinite", "null"),
        ({"genre_mask": np.array([1, 2, 1 << 40])}, "genre_mask", "values above", "values above"),
        ({"impressions": np.array([0, -1, 2])}, "impressions", "values below", "values below"),
    ],
)
def test_values_outside_a_column_declaration_are_refused(
    cols: dict[str, np.ndarray], where: str, binary: str, json: str
) -> None:
    c = codec()
    for encode, decode, message in (
        (c.to_wire, c.from_wire, binary),
        (c.to_json, c.from_json, json),
    ):
        with pytest.raises(WireError, match=message) as exc:
            decode(encode(frame_with(**cols)))  # type: ignore[operator]
        assert exc.value.loc == ("frame", "columns", where)


def test_unknown_may_be_nan_but_never_infinite() -> None:
    ok = codec().from_wire(
        codec().to_wire(frame_with(release_year=np.array([1990.0, np.nan, 1.0])))
    )
    assert math.isnan(ok["release_year"][1])
    with pytest.raises(WireError, match="1 infinite values"):
        codec().from_wire(codec().to_wire(frame_with(release_year=np.array([1.0, np.inf, 2.0]))))


def test_binary_buffers_must_match_their_declaration() -> None:
    frame = frame_with(like_count=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(WireError, match="bytes, 24 expected for 3 items"):
        codec().from_wire(_bad_binary(frame, "like_count", data=b"\x00" * 16))
    with pytest.raises(WireError, match="expected float64 buffer, got float32"):
        codec().from_wire(_bad_binary(frame, "like_count", dtype="float32"))
    wire = codec().to_wire(frame)
    wire.columns["no_such"] = wire.columns.pop("like_count")
    with pytest.raises(WireError, match="unknown column 'no_such'"):
        codec().from_wire(wire)


def test_json_lists_must_be_of_the_declared_kind_and_length() -> None:
    with pytest.raises(WireError, match="expected int64 values, got float64"):
        codec().from_json(JsonFrame(IDS[:2], {"impressions": [1.5, 2]}))
    with pytest.raises(WireError, match="expected float64 values"):
        codec().from_json(JsonFrame(IDS[:2], {"like_count": ["1", "2"]}))
    with pytest.raises(WireError, match="3 values, the frame has 2 items"):
        codec().from_json(JsonFrame(IDS[:2], {"like_count": [1, 2, 3]}))
    with pytest.raises(WireError, match=r"shape \[2, 3\], expected \[2, 4\]"):
        codec().from_json(JsonFrame(IDS[:2], {"counts": [[1, 2, 3], [1, 2, 3]]}))


def test_ids_are_checked_in_one_pass() -> None:
    with pytest.raises(WireError, match="does not match") as exc:
        codec().from_json(JsonFrame(["ok", "not ok"], {}))
    assert exc.value.loc == ("frame", "ids")
    small = FrameCodec(CATALOG, max_items=3)
    with pytest.raises(WireError, match="4 items, at most 3 allowed"):
        small.from_json(JsonFrame(["a", "b", "c", "d"], {}))
    with pytest.raises(WireError, match="missing columns"):
        codec().from_json(JsonFrame(["a"], {}), required=("seen",))


def test_context_checks_its_fields() -> None:
    ok = RequestContext("r", 1.0, UserContext("u1", history=["1", "2"]))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ok), type=RequestContext) == ok
    bad = [
        ({"request_id": "r", "now": 1, "user": {"user_id": "u 1"}}, "user.user_id"),
        ({"request_id": "r", "now": -1, "user": {"user_id": "u"}}, "now"),
        ({"request_id": "r", "now": 1, "k": 0, "user": {"user_id": "u"}}, "k"),
        ({"request_id": "r", "now": 1, "user": {"user_id": "u", "age": 999}}, "user.age"),
        (
            {"request_id": "r", "now": 1, "user": {"user_id": "u", "genre_affinity": [1.0]}},
            "user.genre_affinity",
        ),
    ]
    for body, field in bad:
        with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
            msgspec.json.decode(msgspec.json.encode(body), type=RequestContext)
    with pytest.raises(msgspec.ValidationError, match="finite"):
        msgspec.msgpack.decode(
            msgspec.msgpack.encode({"request_id": "r", "now": math.inf, "user": {"user_id": "u"}}),
            type=RequestContext,
        )


def test_knob_table_resolves_and_checks_overrides() -> None:
    table = KnobTable([MMRReranker()])
    assert table.resolve(VariantSpec())["mmr"] == MMRKnobs()
    tuned = VariantSpec(name="t", knobs={"mmr": {"lambda": 0.4}, "elsewhere": {"x": 1}})
    got = table.resolve(tuned)["mmr"]
    assert isinstance(got, MMRKnobs) and got.lambda_ == 0.4 and got.genre_cap == 5
    assert table.resolve(tuned) is table.resolve(tuned)  # resolved once per variant
    with pytest.raises(KnobError, match=r"variant\.knobs\.mmr.*<= 1\.0"):
        table.resolve(VariantSpec(name="b", knobs={"mmr": {"lambda": 2.0}}))
    with pytest.raises(KnobError, match="Object contains unknown field `lamda`"):
        table.resolve(VariantSpec(name="c", knobs={"mmr": {"lamda": 0.5}}))
    with pytest.raises(KnobError, match="no component 'elsewhere'"):
        table.check(tuned)
