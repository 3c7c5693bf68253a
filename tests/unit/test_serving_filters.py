"""Filtering in-process: each filter's keep mask and removal reason, the chain (cheapest first,
later filters see only survivors), kill switch, knobs per variant, plugins, the wiring check,
and the wire form of the stage (same answer in both encodings; bad bodies answer 422 naming
the field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np
import orjson
import pytest

from services.filtering.filters import (
    AgeRestrictionFilter,
    BlockedFilter,
    DuplicateFilter,
    RegionRestrictionFilter,
    SeenFilter,
)
from services.filtering.filters.age_restriction_filter import AgeRestrictionKnobs
from services.filtering.pipeline import FILTERS, build_filtering
from services.filtering.stage import FilteringStage
from shared.frame import MAX_ITEMS, Frame
from shared.online_store.columns import STORE_COLUMN_NAMES
from shared.pipeline.components import WiringError, check_wiring
from shared.pipeline.context import RequestContext, UserContext, VariantSpec
from shared.pipeline.knobs import KnobError, Knobs
from shared.pipeline.stage import StageCodec, StageRequest, StageResult, stage_route
from shared.platform.fast_routes import JSON, MSGPACK, FastRequest, RequestError

NOW = 1_700_000_000.0
IDS = ["a", "b", "c", "d", "e"]
PLUGIN = "tests.unit.test_serving_filters:LowCtrFilter"


class LowCtrKnobs(Knobs, frozen=True):
    """The click-through rate below which an item is dropped."""

    min_ctr: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.01


class LowCtrFilter:
    """A test-only plugin filter that reads a float column the built-in filters do not."""

    role = "filter"
    name = "low_ctr"
    needs = ("ctr",)
    provides = ()
    Knobs = LowCtrKnobs

    def keep(self, frame: Frame, ctx: RequestContext, knobs: LowCtrKnobs) -> np.ndarray:
        """Keep items clicked often enough."""
        return frame["ctr"] >= knobs.min_ctr


class WatchTimeFilter(LowCtrFilter):
    """A filter needing a column nothing provides (for the wiring check)."""

    name = "watch_time"
    needs = ("watch_time",)


def frame(ids: list[str] = IDS, **cols: Any) -> Frame:
    """Every column a filter reads (found, unrestricted, unseen, unblocked unless given)."""
    n = len(ids)
    return Frame(
        list(ids),
        {
            "found": np.asarray(cols.get("found", [True] * n), dtype=bool),
            "age_restricted": np.asarray(cols.get("restricted", [False] * n), dtype=bool),
            "regions": list(cols.get("regions", [""] * n)),
            "seen": np.asarray(cols.get("seen", [False] * n), dtype=bool),
            "blocked": np.asarray(cols.get("blocked", [False] * n), dtype=bool),
            "ctr": np.asarray(cols.get("ctr", [0.5] * n), dtype=np.float32),
        },
    )


def context(
    age: int | None = None, region: str | None = None, knobs: dict[str, Any] | None = None
) -> RequestContext:
    """A request of user ``u`` (under a variant overriding ``knobs`` when given)."""
    user = UserContext(user_id="u", known=True, age=age, region=region)
    variant = VariantSpec(name="test", knobs=knobs) if knobs else VariantSpec()
    return RequestContext(request_id="t", now=NOW, user=user, variant=variant)


def stage_of(*filters: Any) -> FilteringStage:
    """A filtering stage of just ``filters``, in that order."""
    return FilteringStage(list(filters))


def removed(stage: FilteringStage, ctx: RequestContext, f: Frame) -> dict[str, list[str]]:
    """Reason -> removed ids, read from the stage's ``removed_by`` and ``names``."""
    removed_by = stage.apply(ctx, f)
    out: dict[str, list[str]] = {}
    for row, i in enumerate(removed_by.tolist()):
        if i >= 0:
            out.setdefault(stage.names[i], []).append(f.ids[row])
    return out


def kept(stage: FilteringStage, ctx: RequestContext, f: Frame) -> list[str]:
    """Ids every filter kept, in input order."""
    return [i for i, r in zip(f.ids, stage.apply(ctx, f).tolist(), strict=True) if r < 0]


def chain_frame() -> Frame:
    """One item per reason; "c" is both seen and restricted, the last "a" a duplicate."""
    return frame(
        ["a", "b", "c", "d", "e", "a"],
        restricted=[False, False, True, False, False, False],
        regions=["", "", "", "", "US", ""],
        seen=[False, True, True, False, False, False],
        blocked=[False, False, False, True, False, False],
    )


def json_request(codec: StageCodec[Any], ctx: RequestContext, f: Frame) -> bytes:
    """The JSON body of a call (what a ``curl`` user writes; the gateway sends MessagePack)."""
    return msgspec.json.encode(StageRequest(ctx, codec.inputs.to_json(f.select(codec.needs))))


def request(body: bytes, ctype: str) -> FastRequest:
    """A POST /v1/filter as the fast route sees it."""
    return FastRequest("POST", "/v1/filter", b"", {b"content-type": ctype.encode()}, body, "t")


def wire_column(values: Any) -> Any:
    """A column as MessagePack carries it: [dtype, width, buffer] (strings as a list)."""
    if isinstance(values, np.ndarray):
        return [values.dtype.name, values.shape[1] if values.ndim == 2 else 0, values.tobytes()]
    return ["str", 0, values]


def hand_written_body(
    columns: dict[str, Any],
    ids: list[str] | None = None,
    binary: bool = True,
    ctx: dict[str, Any] | None = None,
) -> bytes:
    """A request body written by hand, as a client that gets it wrong would."""
    if binary:
        cols = {n: wire_column(v) for n, v in columns.items()}
    else:
        cols = {n: (v.tolist() if isinstance(v, np.ndarray) else v) for n, v in columns.items()}
    frame = {"ids": IDS if ids is None else ids, "columns": cols}
    msg = {"context": ctx or msgspec.to_builtins(context()), "frame": frame}
    return msgspec.msgpack.encode(msg) if binary else orjson.dumps(msg)


def good_columns(n: int = len(IDS), **replace: Any) -> dict[str, Any]:
    """Valid columns for the plugin stage; ``replace`` swaps some in (None drops one)."""
    cols: dict[str, Any] = {
        "found": np.ones(n, dtype=bool),
        "age_restricted": np.zeros(n, dtype=bool),
        "regions": [""] * n,
        "seen": np.zeros(n, dtype=bool),
        "blocked": np.zeros(n, dtype=bool),
        "ctr": np.full(n, 0.5, dtype=np.float32),
    }
    cols.update(replace)
    return {k: v for k, v in cols.items() if v is not None}


async def through_the_wire(
    stage: FilteringStage, ctx: RequestContext, f: Frame, binary: bool
) -> StageResult[Any]:
    """Encode the call, decode it on the service side, run, encode and decode the reply."""
    codec = StageCodec(stage)
    body = codec.encode_request(ctx, f) if binary else json_request(codec, ctx, f)
    sctx, sframe = codec.decode_request(body, binary)
    reply = codec.encode_reply(await stage.run(sctx, sframe), binary)
    return codec.decode_reply(reply, MSGPACK if binary else JSON, f.ids)


# ---- each filter -------------------------------------------------------------------------


def test_seen_filter() -> None:
    f = frame(seen=[False, True, False, True, False])
    keep = SeenFilter().keep(f, context(), SeenFilter.Knobs())
    assert keep.tolist() == [True, False, True, False, True]
    assert removed(stage_of(SeenFilter()), context(), f) == {"seen": ["b", "d"]}


def test_blocked_filter_covers_hidden_and_reported() -> None:
    f = frame(blocked=[False, False, False, False, True])
    keep = BlockedFilter().keep(f, context(), BlockedFilter.Knobs())
    assert keep.tolist() == [True, True, True, True, False]
    assert removed(stage_of(BlockedFilter()), context(), f) == {"blocked": ["e"]}


@pytest.mark.parametrize(
    ("age", "kept_ids"),
    [(15, ["a", "c"]), (None, ["a", "c"]), (18, ["a", "b", "c", "d"]), (30, ["a", "b", "c", "d"])],
)
def test_age_restriction_for_minors_unknown_ages_and_adults(
    age: int | None, kept_ids: list[str]
) -> None:
    # "e" is not in the catalog: its restrictions are unknown, so it is never shown
    f = frame(restricted=[False, True, False, True, False], found=[True, True, True, True, False])
    mask = AgeRestrictionFilter().keep(f, context(age=age), AgeRestrictionKnobs())
    assert [i for i, k in zip(IDS, mask.tolist(), strict=True) if k] == kept_ids
    gone = removed(stage_of(AgeRestrictionFilter()), context(age=age), f)
    assert set(gone) == {"age_restricted"} and "e" in gone["age_restricted"]


def test_region_restriction() -> None:
    f = frame(regions=["", "EU", "US|EU", "US", ""])
    stage = stage_of(RegionRestrictionFilter())
    keep = RegionRestrictionFilter().keep(f, context(region="EU"), RegionRestrictionFilter.Knobs())
    assert keep.tolist() == [True, True, True, False, True]
    assert removed(stage, context(region="EU"), f) == {"region_restricted": ["d"]}
    # an unknown region: only unrestricted items
    assert removed(stage, context(region=None), f) == {"region_restricted": ["b", "c", "d"]}


def test_duplicates_keep_the_first_occurrence() -> None:
    f = frame(["a", "b", "a", "c", "b", "a"])
    keep = DuplicateFilter().keep(f, context(), DuplicateFilter.Knobs())
    assert keep.tolist() == [True, True, False, True, False, False]
    assert removed(stage_of(DuplicateFilter()), context(), f) == {"duplicate": ["a", "b", "a"]}


# ---- the chain ---------------------------------------------------------------------------


def test_chain_runs_cheapest_first_on_survivors() -> None:
    stage = build_filtering()
    assert stage.names == [cls.name for cls in FILTERS]
    assert stage.names[0] == "age_restricted" and stage.names[-1] == "duplicate"
    f = chain_frame()
    removed_by = stage.apply(context(age=12, region="EU"), f)
    assert np.flatnonzero(removed_by < 0).tolist() == [0]  # only the first "a" survives
    # "c" is both seen and restricted: attributed once, to the filter that ran first
    assert removed(stage, context(age=12, region="EU"), f) == {
        "age_restricted": ["c"],
        "blocked": ["d"],
        "region_restricted": ["e"],
        "seen": ["b"],
        "duplicate": ["a"],
    }


def test_later_filters_see_only_the_survivors() -> None:
    seen_by: list[list[str]] = []

    class Spy(LowCtrFilter):
        name = "spy"

        def keep(self, frame: Frame, ctx: RequestContext, knobs: LowCtrKnobs) -> np.ndarray:
            seen_by.append(list(frame.ids))
            return np.ones(len(frame), dtype=bool)

    stage = stage_of(SeenFilter(), Spy(), BlockedFilter(), Spy())
    f = frame(seen=[False, True, False, False, False], blocked=[False, False, True, False, False])
    stage.apply(context(), f)
    assert seen_by == [["a", "c", "d", "e"], ["a", "d", "e"]]


async def test_stage_run_answers_removed_by_and_the_filters_that_ran() -> None:
    stage = build_filtering()
    result = await stage.run(context(age=12, region="EU"), chain_frame())
    assert result.frame.ids == chain_frame().ids
    assert result.frame["removed_by"].dtype == np.int64
    assert result.frame["removed_by"].tolist() == [-1, 3, 0, 1, 2, 4]
    assert result.info.applied == stage.names


def test_kill_switch_skips_a_filter() -> None:
    stage = build_filtering(frozenset({"seen"}))
    assert "seen" not in stage.names and len(stage.names) == len(FILTERS) - 1
    assert kept(stage, context(), frame(seen=[True] * 5)) == IDS
    assert kept(build_filtering(), context(), frame(seen=[True] * 5)) == []


def test_empty_frame() -> None:
    removed_by = build_filtering().apply(context(), frame([]))
    assert removed_by.shape == (0,) and removed_by.dtype == np.int64


# ---- knobs -------------------------------------------------------------------------------


def test_variant_overrides_the_adult_age() -> None:
    stage = build_filtering()
    f = frame(restricted=[False, True, False, False, False])
    assert kept(stage, context(age=19), f) == IDS  # production: adults from 18
    stricter = context(age=19, knobs={"age_restricted": {"adult_age": 21}})
    assert removed(stage, stricter, f) == {"age_restricted": ["b"]}
    assert kept(stage, context(age=19), f) == IDS  # the override stays in its variant


def test_out_of_bounds_knob_is_refused_with_its_location() -> None:
    ctx = context(age=30, knobs={"age_restricted": {"adult_age": 200}})
    with pytest.raises(KnobError) as exc:
        build_filtering().apply(ctx, frame())
    assert exc.value.loc == ("variant", "knobs", "age_restricted")
    assert "150" in exc.value.msg and "adult_age" in exc.value.msg


def test_unknown_knob_name_is_refused() -> None:
    with pytest.raises(KnobError, match="adult_agee"):
        build_filtering().apply(context(knobs={"age_restricted": {"adult_agee": 21}}), frame())


# ---- plugins and wiring ------------------------------------------------------------------


def test_plugin_filter_runs_last_and_its_removals_are_its_own() -> None:
    stage = build_filtering(plugins=PLUGIN)
    assert stage.names == [*(cls.name for cls in FILTERS), "low_ctr"]
    assert "ctr" in stage.needs()
    f = frame(ctr=[0.5, 0.001, 0.001, 0.5, 0.0], seen=[False, False, True, False, False])
    # "c" is seen and rarely clicked: the built-in filter ran first and gets it
    assert removed(stage, context(), f) == {"seen": ["c"], "low_ctr": ["b", "e"]}
    looser = context(knobs={"low_ctr": {"min_ctr": 0.0}})
    assert removed(stage, looser, f) == {"seen": ["c"]}


def test_a_plugin_of_another_role_is_not_a_filter() -> None:
    class_path = "tests.unit.test_serving_filters:LowCtrKnobs"  # no role: not loaded
    assert build_filtering(plugins=class_path).names == [cls.name for cls in FILTERS]


def test_unimportable_plugin_stops_the_service() -> None:
    with pytest.raises(WiringError, match="NoSuchFilter"):
        build_filtering(plugins="tests.unit.test_serving_filters:NoSuchFilter")


def test_wiring_accepts_the_declared_filters() -> None:
    have = check_wiring(
        STORE_COLUMN_NAMES, [("filtering", build_filtering(plugins=PLUGIN).components)]
    )
    assert "ctr" in have


def test_wiring_names_the_filter_and_the_missing_column() -> None:
    stage = stage_of(SeenFilter(), WatchTimeFilter())
    with pytest.raises(WiringError) as exc:
        check_wiring(STORE_COLUMN_NAMES, [("filtering", stage.components)])
    text = str(exc.value)
    assert "'watch_time'" in text and "WatchTimeFilter" in text and text.startswith("filtering")


# ---- the wire ----------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_wire_round_trip_gives_the_same_answer(binary: bool) -> None:
    stage = build_filtering(plugins=PLUGIN)
    ctx = context(age=16, region="EU", knobs={"low_ctr": {"min_ctr": 0.2}})
    f = chain_frame()
    f.set("ctr", np.array([0.1, 0.5, 0.5, 0.5, 0.5, 0.5], dtype=np.float32))
    local = await stage.run(ctx, f)
    remote = await through_the_wire(stage, ctx, f, binary)
    # the first "a" is rarely clicked: the plugin, running last, removes it after the
    # duplicate filter already removed the second "a"
    assert local.frame["removed_by"].tolist() == [5, 3, 0, 1, 2, 4]
    assert remote.frame["removed_by"].tolist() == local.frame["removed_by"].tolist()
    assert remote.info == local.info


@pytest.mark.parametrize("ctype", [MSGPACK, JSON])
async def test_route_answers_in_the_encoding_it_was_asked_in(ctype: str) -> None:
    stage = build_filtering()
    codec = StageCodec(stage)
    ctx, f = context(age=12, region="EU"), chain_frame()
    body = codec.encode_request(ctx, f) if ctype == MSGPACK else json_request(codec, ctx, f)
    resp = await stage_route(stage).handler(request(body, ctype))
    assert resp.status == 200 and resp.content_type == ctype
    got = codec.decode_reply(resp.body, resp.content_type, f.ids)
    assert got.frame["removed_by"].tolist() == [-1, 3, 0, 1, 2, 4]


@dataclass
class BadBody:
    """A body that is wrong in one way, and the 422 it must get (per encoding when they differ)."""

    columns: dict[str, Any]
    loc: tuple[str, ...]
    msg: str
    ids: list[str] | None = None
    json_columns: dict[str, Any] | None = None  # when JSON spells the mistake differently
    json_msg: str | None = None


COLS = ("body", "frame", "columns")
BAD_BODIES = {
    "nan_in_a_float_column": BadBody(
        good_columns(ctr=np.array([0.5, np.nan, 0.5, 0.5, 0.5], dtype=np.float32)),
        (*COLS, "ctr"),
        "NaN",
        json_columns=good_columns(ctr=[0.5, None, 0.5, 0.5, 0.5]),  # JSON spells NaN null
        json_msg="null",
    ),
    "columns_of_different_lengths": BadBody(
        good_columns(seen=np.zeros(len(IDS) - 1, dtype=bool)), (*COLS, "seen"), "5 items"
    ),
    "too_many_items": BadBody(
        good_columns(MAX_ITEMS + 1),
        ("body", "frame", "ids"),
        f"at most {MAX_ITEMS}",
        ids=[f"i{j}" for j in range(MAX_ITEMS + 1)],
    ),
    "a_bad_item_id": BadBody(
        good_columns(), ("body", "frame", "ids"), "'c d'", ids=["a", "b", "c d", "e", "f"]
    ),
    "a_missing_needed_column": BadBody(good_columns(blocked=None), COLS, "blocked"),
    "wrong_dtype": BadBody(
        good_columns(seen=np.zeros(len(IDS), dtype=np.float64)), (*COLS, "seen"), "bool"
    ),
    "unknown_column": BadBody(
        good_columns(colour=np.zeros(len(IDS), dtype=np.int64)),
        (*COLS, "colour"),
        "unknown column",
    ),
}


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_body_answers_422_naming_the_field(case: str, binary: bool) -> None:
    bad = BAD_BODIES[case]
    columns = bad.columns if binary or bad.json_columns is None else bad.json_columns
    msg = bad.msg if binary or bad.json_msg is None else bad.json_msg
    body = hand_written_body(columns, bad.ids, binary)
    route = stage_route(build_filtering(plugins=PLUGIN))
    with pytest.raises(RequestError) as exc:
        await route.handler(request(body, MSGPACK if binary else JSON))
    assert exc.value.status == 422
    (detail,) = exc.value.detail
    assert tuple(detail["loc"]) == bad.loc, detail
    assert msg in detail["msg"], detail


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_bad_context_answers_422_naming_the_field(binary: bool) -> None:
    ctx = msgspec.to_builtins(context())
    ctx["user"]["age"] = -1
    body = hand_written_body(good_columns(), binary=binary, ctx=ctx)
    with pytest.raises(RequestError) as exc:
        await stage_route(build_filtering(plugins=PLUGIN)).handler(
            request(body, MSGPACK if binary else JSON)
        )
    assert exc.value.status == 422
    assert exc.value.detail[0]["loc"] == ["body", "context", "user", "age"]


async def test_out_of_bounds_knob_over_the_wire_answers_422() -> None:
    """A variant's knob out of bounds is bad input, like any other field of the body."""
    ctx = context(age=30, knobs={"age_restricted": {"adult_age": 200}})
    stage = build_filtering()
    body = StageCodec(stage).encode_request(ctx, frame())
    with pytest.raises(RequestError) as exc:
        await stage_route(stage).handler(request(body, MSGPACK))
    assert exc.value.status == 422
    loc = exc.value.detail[0]["loc"]
    assert loc[:5] == ["body", "context", "variant", "knobs", "age_restricted"]


async def test_other_media_types_are_refused() -> None:
    with pytest.raises(RequestError) as exc:
        await stage_route(build_filtering()).handler(request(b"a=1", "text/plain"))
    assert exc.value.status == 415


async def test_an_item_id_with_a_newline_is_refused() -> None:
    """ID_PATTERN has no newline: "a\\nb" is not one valid id (nor two)."""
    body = hand_written_body(good_columns(), ids=["a", "b", "c\nd", "e", "f"])
    with pytest.raises(RequestError) as exc:
        await stage_route(build_filtering(plugins=PLUGIN)).handler(request(body, MSGPACK))
    assert exc.value.status == 422
    assert exc.value.detail[0]["loc"] == ["body", "frame", "ids"]


async def test_a_user_id_with_a_trailing_newline_is_refused() -> None:
    ctx = msgspec.to_builtins(context())
    ctx["user"]["user_id"] = "u1\n"
    body = hand_written_body(good_columns(), ctx=ctx)
    with pytest.raises(RequestError) as exc:
        await stage_route(build_filtering(plugins=PLUGIN)).handler(request(body, MSGPACK))
    assert exc.value.status == 422
    assert exc.value.detail[0]["loc"] == ["body", "context", "user", "user_id"]
