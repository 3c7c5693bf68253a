"""Segment popularity's definition (shared.features.popularity), which every path computes."""

from __future__ import annotations

import numpy as np
import pytest

from shared.features.popularity import ALL_SEGMENT, segment_popularity, user_segment

DAY = 86_400.0


def test_an_event_counts_its_weight_halved_per_half_life_in_its_segment_and_all() -> None:
    now = 100 * DAY
    got = segment_popularity(
        ["25-34|f", "25-34|f", "18-24|m", "18-24|m", "18-24|m"],
        ["a", "a", "a", "b", "b"],
        np.array([1.0, 2.0, 1.0, 0.0, 1.0]),  # weight 0: no engagement, never counted
        np.array([now - 7 * DAY, now - 1, now - 14 * DAY, now - DAY, now]),  # now: not before
        now,
        half_life_s=7 * DAY,
    )
    assert got["25-34|f"] == {"a": pytest.approx(0.5 + 2.0 * 2 ** (-1 / (7 * DAY)))}
    assert got["18-24|m"] == {"a": pytest.approx(0.25)}  # b: a weightless event, one at now
    assert got[ALL_SEGMENT] == {"a": pytest.approx(2.75, rel=1e-5)}
    assert set(got) == {"25-34|f", "18-24|m", ALL_SEGMENT}


def test_the_segment_rule() -> None:
    assert user_segment(30, "F") == "25-34|f"
    assert user_segment(None, None) == "unknown"
    assert user_segment(float("nan"), "") == "unknown"  # a data frame's missing profile
    assert user_segment(60, None) == "56+|u"
