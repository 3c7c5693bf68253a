"""The per-request user encoding memo: one encoding per user object and moment, equal to the
encoder's own output."""

from __future__ import annotations

import numpy as np

from shared.features import DEFAULT_CONFIG, encode_user_tower
from shared.pipeline import user_feeds
from shared.pipeline.context import UserContext
from shared.pipeline.user_feeds import user_tower_feeds


def test_one_encoding_per_user_object_and_moment() -> None:
    user = UserContext("7", known=True, age=30, gender="F", history=["1", "2", "3"])
    first = user_tower_feeds(user, 1.7e9, DEFAULT_CONFIG)
    expected = encode_user_tower([user.features()], 1.7e9, DEFAULT_CONFIG)
    assert first.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(first[name], value)
    assert user_tower_feeds(user, 1.7e9, DEFAULT_CONFIG) is first  # the second stage's call
    assert user_tower_feeds(user, 1.7e9 + 60, DEFAULT_CONFIG) is not first  # another moment
    twin = UserContext("7", known=True, age=30, gender="F", history=["1", "2", "3", "4"])
    other = user_tower_feeds(twin, 1.7e9, DEFAULT_CONFIG)  # another request's user
    assert not np.array_equal(other["hist_item_hash"], first["hist_item_hash"])


def test_the_memo_stays_bounded() -> None:
    for i in range(100):
        user_tower_feeds(UserContext(str(i)), 1.7e9, DEFAULT_CONFIG)
    assert len(user_feeds._memo) <= user_feeds._RECENT
