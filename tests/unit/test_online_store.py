"""Unit tests of the online store's pure parts: effects, affinity encoding, layout, wire forms."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest

from shared.event_semantics import EVENT_SEMANTICS
from shared.events import Event
from shared.features.affinity import update_affinity
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.item import genre_multi_hot
from shared.features.popularity import user_segment
from shared.features.records import ItemFeatures, UserFeatures
from shared.online_store.catalog import decode_item, encode_item
from shared.online_store.counter_layout import CounterLayout
from shared.online_store.effects import (
    BLOCK,
    CLICK,
    IMPRESSION,
    INTERACTION,
    LIKE,
    RATING,
    affinity_at,
    affinity_growth,
    event_flags,
)
from shared.online_store.seen_filter import QueuedCheck, SeenFilter
from shared.online_store.types import ItemBatch, ItemRecord, UserState
from shared.online_store.wire import (
    item_batch_from_json,
    item_batch_to_json,
    user_state_from_json,
    user_state_to_json,
)


def _event(kind: str, value: float | None = None, ts: float = 1.7e9) -> Event:
    return Event(event_id="e", user_id="u", item_id="i", type=kind, value=value, timestamp=ts)


@pytest.mark.parametrize(
    ("kind", "value", "flags"),
    [
        ("impression", None, IMPRESSION),
        ("click", None, INTERACTION | CLICK),
        ("watch", 30.0, INTERACTION),
        ("like", None, INTERACTION | LIKE),
        ("rate", 4.0, INTERACTION | RATING | LIKE),
        ("rate", 3.0, INTERACTION | RATING),
        ("rate", None, INTERACTION),
        ("hide", None, BLOCK),
        ("report", None, BLOCK),
    ],
)
def test_event_flags(kind: str, value: float | None, flags: int) -> None:
    assert event_flags(_event(kind, value)) == flags


def test_the_ingest_script_reads_the_same_flag_bits() -> None:
    """ingest.lua names the bits itself (Lua cannot import them): both must say the same."""
    source = resources.files("shared.online_store").joinpath("ingest.lua").read_text()
    found = re.search(r"local (INTERACTION[\w, ]*) = ([\d, ]+)", source)
    assert found, "ingest.lua no longer declares its flag bits on one line"
    names, values = (part.split(", ") for part in found.groups())
    lua = dict(zip(names, map(int, values), strict=True))
    python = {
        "INTERACTION": INTERACTION,
        "LIKE": LIKE,
        "IMPRESSION": IMPRESSION,
        "CLICK": CLICK,
        "BLOCK": BLOCK,
        "RATING": RATING,
    }
    assert lua == python


def test_flags_follow_the_declaration() -> None:
    """A changed declaration changes the script's flags: they are not written down twice."""
    changed = EVENT_SEMANTICS.replace("hide", interaction=True, block=False)
    assert event_flags(_event("hide")) == BLOCK
    assert event_flags(_event("hide"), semantics=changed) == INTERACTION


def test_affinity_sums_equal_the_shared_update_rule() -> None:
    """Stored sums read at `now` equal update_affinity applied in time order, decayed to now."""
    rng = np.random.default_rng(0)
    half_life = DEFAULT_CONFIG.affinity_half_life_s
    ts = np.sort(1.6e9 + rng.uniform(0, 90 * 86_400, 40))
    kinds = rng.choice(["click", "like", "rate", "watch"], 40)
    genres = [genre_multi_hot(rng.choice(["Drama", "Comedy", "Action", "War"], 2)) for _ in ts]
    ref, ref_ts = None, None
    stored = np.zeros_like(genres[0], dtype=np.float64)
    for t, k, g in zip(ts, kinds, genres, strict=True):
        w = EVENT_SEMANTICS[str(k)].affinity_weight
        ref, ref_ts = update_affinity(ref, ref_ts, float(t), g, w, half_life)
        stored += w * g / g.sum() * affinity_growth(float(t), half_life)
    now = float(ts[-1]) + 5 * 86_400
    expected = ref * 0.5 ** ((now - ref_ts) / half_life)
    np.testing.assert_allclose(affinity_at(stored, now, half_life), expected, rtol=1e-9)


def test_affinity_before_the_epoch_reads_back() -> None:
    """MovieLens timestamps (1997) lie before the stored sums' epoch: still exact."""
    stored = np.array([2.0]) * affinity_growth(8.8e8, 86_400.0 * 30)
    np.testing.assert_allclose(affinity_at(stored, 8.8e8, 86_400.0 * 30), [2.0])


def test_layout_has_one_ring_per_granularity_sized_for_its_longest_window() -> None:
    layout = CounterLayout(DEFAULT_CONFIG)
    assert [(r.granularity, r.slots) for r in layout.rings] == [(60, 60), (3600, 168)]
    assert layout.nbytes == layout.words * 4
    with pytest.raises(ValueError, match="multiple"):
        CounterLayout(FeatureConfig(windows={"x": (100, 60)}))


def test_windowed_counts_follow_the_bucket_rule() -> None:
    """Slots behind the head hold older buckets; only those inside [lo, hi] count."""
    layout = CounterLayout(DEFAULT_CONFIG)
    minute, hour = layout.rings
    words = np.zeros((2, layout.words), dtype=np.int64)
    now = 1_700_000_000.0
    head_m, head_h = int(now // 60), int(now // 3600)
    words[0, minute.head_word], words[0, hour.head_word] = head_m, head_h
    words[0, minute.offset + head_m % 60] = 3  # this minute
    words[0, minute.offset + (head_m - 59) % 60] = 2  # oldest minute still in the hour
    words[0, hour.offset + head_h % 168] = 5
    words[0, hour.offset + (head_h - 30) % 168] = 7  # 30 h ago: in 7d, not in 24h
    out = layout.windowed(words, now)
    assert out["1h"].tolist() == [5, 0]
    assert out["24h"].tolist() == [5, 0]
    assert out["7d"].tolist() == [12, 0]
    later = layout.windowed(words, now + 60)  # one minute on: the oldest minute leaves
    assert later["1h"].tolist() == [3, 0]


def test_decode_pads_short_and_missing_blobs() -> None:
    layout = CounterLayout(DEFAULT_CONFIG)
    blob = (7).to_bytes(4, "big")
    words = layout.decode([blob, None])
    assert words.shape == (2, layout.words)
    assert words[0, 0] == 7 and words[1].sum() == 0


def test_segments() -> None:
    assert user_segment(30, "F") == "25-34|f"
    assert user_segment(None, None) == "unknown"
    assert user_segment(60, None) == "56+|u"


def test_item_record_round_trip() -> None:
    rec = ItemRecord("i1", "T", ("Drama",), 1999, 123.0, True, frozenset({"US", "DE"}))
    assert decode_item("i1", encode_item(rec)) == rec


def test_wire_round_trips() -> None:
    state = UserState(
        UserFeatures("u", 30, "f", history=("a", "b"), genre_affinity=[0.5] * 19, n_events=2),
        known=True, seen=frozenset({"a"}), blocked=frozenset({"b"}), impressions={"c": 2},
        segment="25-34|f", region="US",
    )  # fmt: skip
    assert user_state_from_json(user_state_to_json(state)) == state
    batch = ItemBatch(
        ["a"], np.array([True]), [ItemFeatures("a", ("Drama",), 1990, 1, 2, 3, 4, 1, 4)],
        np.array([5.0]), np.array([False]), [frozenset({"US"})], np.array([0.1], np.float32),
    )  # fmt: skip
    back = item_batch_from_json(item_batch_to_json(batch))
    assert back.item_ids == ["a"] and list(back.features) == list(batch.features)
    assert back.regions == batch.regions and back.found.tolist() == [True]


def test_seen_filter_positions_and_answers() -> None:
    """One block and a 7-bit mask per item (the same each time); an empty answer (no filter,
    or one that just expired) marks nothing; a block holding an item's bits in either
    generation's word marks it."""
    f = SeenFilter(blocks=1024, hashes=7)
    block, mask = f.position("m1")
    assert 0 <= block < 1024 and 1 <= bin(mask).count("1") <= 7
    assert f.position("m1") == (block, mask)
    check = QueuedCheck(np.array([mask, mask], dtype=np.uint64), np.array([0, 1]), 2)
    assert SeenFilter.hits(b"", check).tolist() == [False, False]
    words = np.array([[0, mask], [mask ^ (mask & -mask), 0]], dtype=">u8")  # second: a bit short
    assert SeenFilter.hits(words.tobytes(), check).tolist() == [True, False]
    shared = QueuedCheck(check.masks, np.array([0, 0]), 1)  # two items in one block, asked once
    assert SeenFilter.hits(words[:1].tobytes(), shared).tolist() == [True, True]
    with pytest.raises(ValueError, match="blocks"):
        SeenFilter(blocks=1 << 17)
