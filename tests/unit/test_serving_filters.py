"""Filtering in-process: each filter's removals with their reason, the chain (cheapest first,
later filters see only survivors), the kill switch and the wire form of the stage."""

from __future__ import annotations

import numpy as np
import orjson

from services.filtering.filters import (
    AgeRestrictionFilter,
    BlockedFilter,
    DuplicateFilter,
    RegionRestrictionFilter,
    SeenFilter,
)
from services.filtering.pipeline import FILTERS, build_filter_chain
from shared.pipeline.filter_input import FilterInput, FilterUser
from shared.pipeline.transport import _OPTS
from shared.pipeline.wire import FilterBody, decode_filter_result, encode_filter_input
from shared.pipeline.wire import encode_filter_result as encode_result

IDS = ["a", "b", "c", "d", "e"]


def batch(user: FilterUser, ids: list[str] = IDS, **cols: object) -> FilterInput:
    n = len(ids)
    return FilterInput(
        item_ids=list(ids),
        found=np.asarray(cols.get("found", [True] * n), dtype=bool),
        age_restricted=np.asarray(cols.get("restricted", [False] * n), dtype=bool),
        regions=list(cols.get("regions", [frozenset()] * n)),  # type: ignore[call-overload]
        user=user,
    )


def test_seen_filter() -> None:
    keep, gone = SeenFilter().apply(batch(FilterUser(seen=frozenset({"b", "d", "zz"}))))
    assert keep.tolist() == [True, False, True, False, True]
    assert gone.reason == "seen" and gone.item_ids == ["b", "d"]


def test_blocked_filter_covers_hidden_and_reported() -> None:
    keep, gone = BlockedFilter().apply(batch(FilterUser(blocked=frozenset({"e"}))))
    assert keep.tolist() == [True, True, True, True, False]
    assert (gone.reason, gone.item_ids) == ("blocked", ["e"])


def test_age_restriction_for_minors_unknown_ages_and_adults() -> None:
    restricted = [False, True, False, True, False]
    found = [True, True, True, True, False]  # "e" is not in the catalog: restrictions unknown
    for age, kept in ((15, ["a", "c"]), (None, ["a", "c"]), (30, ["a", "b", "c", "d"])):
        keep, gone = AgeRestrictionFilter().apply(
            batch(FilterUser(age=age), restricted=restricted, found=found)
        )
        assert [i for i, k in zip(IDS, keep, strict=True) if k] == kept, age
        assert gone.reason == "age_restricted" and "e" in gone.item_ids


def test_region_restriction() -> None:
    regions = [
        frozenset(),
        frozenset({"EU"}),
        frozenset({"US", "EU"}),
        frozenset({"US"}),
        frozenset(),
    ]
    eu = RegionRestrictionFilter().apply(batch(FilterUser(region="EU"), regions=regions))
    assert eu[1].item_ids == ["d"] and eu[1].reason == "region_restricted"
    unknown = RegionRestrictionFilter().apply(batch(FilterUser(region=None), regions=regions))
    assert unknown[1].item_ids == ["b", "c", "d"]  # unknown region: unrestricted items only


def test_duplicates_keep_the_first_occurrence() -> None:
    keep, gone = DuplicateFilter().apply(batch(FilterUser(), ["a", "b", "a", "c", "b", "a"]))
    assert keep.tolist() == [True, True, False, True, False, False]
    assert (gone.reason, gone.item_ids) == ("duplicate", ["a", "b", "a"])


def test_chain_runs_cheapest_first_on_survivors() -> None:
    chain = build_filter_chain()
    assert chain.names == [cls().name for cls in FILTERS]
    assert chain.names[0] == "age_restricted" and chain.names[-1] == "duplicate"
    ids = ["a", "b", "c", "d", "e", "a"]
    user = FilterUser(seen=frozenset({"b", "c"}), blocked=frozenset({"d"}), age=12, region="EU")
    res = chain.apply(
        batch(
            user,
            ids,
            restricted=[False, False, True, False, False, False],
            regions=[frozenset()] * 4 + [frozenset({"US"}), frozenset()],
        )
    )
    assert [ids[r] for r in res.kept] == ["a"]
    assert res.kept.tolist() == [0]  # rows of the input, in input order
    # "c" is both seen and restricted: reported once, by the filter that ran first
    assert res.removed_counts() == {
        "age_restricted": 1,
        "blocked": 1,
        "region_restricted": 1,
        "seen": 1,
        "duplicate": 1,
    }
    removed = {r.reason: r.item_ids for r in res.removed}
    assert removed["age_restricted"] == ["c"] and removed["seen"] == ["b"]
    assert res.applied == chain.names


def test_kill_switch_skips_a_filter() -> None:
    chain = build_filter_chain(frozenset({"seen"}))
    res = chain.apply(batch(FilterUser(seen=frozenset({"a"}))))
    assert "seen" not in chain.names and res.kept.tolist() == [0, 1, 2, 3, 4]


def test_wire_round_trip_gives_the_same_answer() -> None:
    user = FilterUser(seen=frozenset({"b"}), blocked=frozenset(), age=16, region="EU")
    inp = batch(
        user,
        restricted=[False, False, True, False, False],
        regions=[frozenset(), frozenset(), frozenset(), frozenset({"US"}), frozenset()],
    )
    body = FilterBody.model_validate_json(orjson.dumps(encode_filter_input(inp), option=_OPTS))
    chain = build_filter_chain()
    remote = decode_filter_result(
        orjson.loads(orjson.dumps(encode_result(chain.apply(body.to_input())), option=_OPTS))
    )
    local = chain.apply(inp)
    assert remote.kept.tolist() == local.kept.tolist() == [0, 4]
    assert remote.removed_counts() == local.removed_counts()
