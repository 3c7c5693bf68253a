"""The one declaration of event semantics: complete, consistent, resolved the same per event."""

from __future__ import annotations

import numpy as np
import pytest

from shared.event_semantics import EVENT_SEMANTICS, EventEffect, EventSemantics
from shared.events import EVENT_TYPES

NAN = float("nan")


def test_declares_every_event_type_and_what_it_moves() -> None:
    sem = EVENT_SEMANTICS
    assert set(sem.effects) == set(EVENT_TYPES)
    assert {t for t, e in sem.effects.items() if e.interaction} == {
        "click",
        "watch",
        "like",
        "rate",
    }
    assert {t for t, e in sem.effects.items() if e.block} == {"hide", "report"}
    assert [t for t, e in sem.effects.items() if e.rating] == ["rate"]
    assert [t for t, e in sem.effects.items() if e.like] == ["like"]
    assert {t: e.affinity_weight for t, e in sem.effects.items() if e.affinity_weight} == {
        "click": 1.0,
        "watch": 1.0,
        "like": 2.0,
        "rate": 1.0,
    }


def test_resolves_ratings_against_the_like_threshold() -> None:
    types = ["rate", "rate", "rate", "rate", "like", "watch", "impression", "hide"]
    values = np.array([4.0, 3.5, 5.0, NAN, NAN, 30.0, NAN, NAN])
    fx = EVENT_SEMANTICS.resolve(types, values, like_threshold=4.0)
    assert fx.like.tolist() == [True, False, True, False, True, False, False, False]
    assert fx.is_rating.tolist() == [True, True, True, False, False, False, False, False]
    assert fx.rating.tolist() == [4.0, 3.5, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # dwell is no rating
    assert fx.interaction.tolist() == [True] * 6 + [False, False]
    assert fx.impression.tolist() == [False] * 6 + [True, False]
    assert fx.block.tolist() == [False] * 7 + [True]
    assert fx.weight.tolist() == [1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 0.0, 0.0]
    assert fx.take(np.array([0, 7])).block.tolist() == [False, True]


def test_an_unknown_type_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'share'"):
        EVENT_SEMANTICS.resolve(["click", "share"], np.array([NAN, NAN]), 4.0)


def test_replace_changes_one_type_only() -> None:
    changed = EVENT_SEMANTICS.replace("watch", interaction=False, affinity_weight=0.0)
    assert not changed["watch"].interaction and EVENT_SEMANTICS["watch"].interaction
    assert {t: e for t, e in changed.effects.items() if t != "watch"} == {
        t: e for t, e in EVENT_SEMANTICS.effects.items() if t != "watch"
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"like": True}, "like set on a non-interaction"),
        ({"rating": True}, "rating set on a non-interaction"),
        ({"affinity_weight": 0.5}, "affinity set on a non-interaction"),
        ({"interaction": True, "affinity_weight": -1.0}, "finite and >= 0"),
        ({"interaction": True, "affinity_weight": float("inf")}, "finite and >= 0"),
    ],
)
def test_inconsistent_effects_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EVENT_SEMANTICS.replace("impression", **change)


def test_a_table_must_cover_exactly_the_event_types() -> None:
    partial = {t: e for t, e in EVENT_SEMANTICS.effects.items() if t != "report"}
    with pytest.raises(ValueError, match="missing {'report'}"):
        EventSemantics(partial)
    with pytest.raises(ValueError, match="unknown {'share'}"):
        EventSemantics({**EVENT_SEMANTICS.effects, "share": EventEffect()})
