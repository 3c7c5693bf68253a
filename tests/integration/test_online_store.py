"""The online store (writer script + async reader) against a real Redis, and a real Redis
Cluster of three primaries: every test runs on both."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from shared.event_semantics import EVENT_SEMANTICS
from shared.events import Event
from shared.features.counters import count_in_window
from shared.features.popularity import segment_popularity
from shared.online_store import ItemRecord, UserProfile, keys
from shared.online_store.config import StoreConfig
from shared.online_store.reader import OnlineStore
from shared.online_store.writer import StoreWriter
from tests.utils.stores import STORE_KINDS, StoreTarget, store_target

pytestmark = pytest.mark.integration
DB = 6  # a database of its own: other suites flush db 0


@pytest.fixture(params=STORE_KINDS)
def target(request: pytest.FixtureRequest) -> StoreTarget:
    return store_target(request, request.param, DB)


@pytest.fixture
def writer(target: StoreTarget) -> Iterator[StoreWriter]:
    client = target.flushed()
    yield StoreWriter(client)
    client.close()


@pytest.fixture
async def store(target: StoreTarget) -> OnlineStore:
    client = target.async_client()
    yield OnlineStore(client)
    await client.aclose()


def ev(user: str, item: str, kind: str, ts: float, value: float | None = None) -> Event:
    return Event(
        event_id=uuid.uuid4().hex, user_id=user, item_id=item, type=kind, value=value, timestamp=ts
    )


async def test_windows_match_offline_definition(writer: StoreWriter, store: OnlineStore) -> None:
    """Counts per window equal shared.features.counters.count_in_window on the same events;
    events older than a window do not enter it (and older than every ring only the total)."""
    now = 1_750_000_000.0
    hour, day = 3600, 86_400
    ages = [10, 50 * 60, 61 * 60, 5 * hour, 23 * hour, 30 * hour, 6 * day, 8 * day, 30 * day]
    writer.put_items([ItemRecord("m", genres=("Drama",))])
    writer.apply_events([ev("u", "m", "click", now - a) for a in ages])
    batch = await store.get_items(["m"], now)
    ts = np.sort(np.array([now - a for a in ages]))
    f = batch.features[0]
    for name, got in (("1h", f.count_1h), ("24h", f.count_24h), ("7d", f.count_7d)):
        window, gran = store.config.windows[name]
        assert got == count_in_window(ts, now, window, gran), name
    assert (f.count_1h, f.count_24h, f.count_7d, f.count_total) == (2, 5, 7, 9)
    assert batch.counts is not None and batch.counts[0].tolist() == [2, 5, 7, 9]


async def test_late_old_event_does_not_enter_rings(writer: StoreWriter, store: OnlineStore) -> None:
    now = 1_750_000_000.0
    writer.apply_events([ev("u", "m", "click", now - 60)])
    writer.apply_events([ev("u", "m", "click", now - 9 * 86_400)])  # arrives after a newer one
    writer.apply_events([ev("u", "m", "click", now - 2 * 3600)])
    f = (await store.get_items(["m"], now)).features[0]
    assert (f.count_1h, f.count_24h, f.count_7d, f.count_total) == (1, 2, 2, 3)
    # Two hours later the head moves on: the old minute slots are cleared, not recounted.
    writer.apply_events([ev("u", "m", "click", now + 2 * 3600)])
    f = (await store.get_items(["m"], now + 2 * 3600 + 1)).features[0]
    assert (f.count_1h, f.count_24h, f.count_total) == (1, 3, 4)


async def test_duplicate_event_ids_count_once(writer: StoreWriter, store: OnlineStore) -> None:
    now = time.time()
    events = [ev("u1", "a", "click", now - 1) for _ in range(5)]
    first = writer.apply_events(events)
    again = writer.apply_events(events + events[:2])
    assert (first.applied, first.duplicates) == (5, 0)
    assert (again.applied, again.duplicates) == (0, 7)
    assert again.mask == b"0" * 7
    batch = await store.get_items(["a"], now)
    assert batch.features[0].count_total == 5
    user = await store.get_user("u1", now)
    assert user.features.n_events == 5


async def test_user_state_from_events(writer: StoreWriter, store: OnlineStore) -> None:
    now = time.time()
    writer.put_items([ItemRecord("a", genres=("Action",)), ItemRecord("b", genres=("Drama",))])
    writer.put_users([UserProfile("u1", age=30, gender="F", region="DE")])
    writer.apply_events(
        [
            ev("u1", "a", "click", now - 30),
            ev("u1", "a", "watch", now - 20, 300.0),
            ev("u1", "b", "rate", now - 10, 5.0),
            ev("u1", "c", "impression", now - 5),
            ev("u1", "c", "impression", now - 4),
            ev("u1", "d", "hide", now - 3),
            ev("u1", "e", "report", now - 2),
        ]
    )
    user = await store.get_user("u1", now)
    f = user.features
    assert user.known and user.segment == "25-34|f" and user.region == "DE"
    assert f.history == ("a", "b")  # order of first interaction, each item once
    assert user.seen == {"a", "b"} and user.blocked == {"d", "e"}
    assert user.impressions == {"c": 2}
    assert (f.n_events, f.n_ratings, f.rating_sum) == (3, 1, 5.0)
    assert f.last_event_ts == pytest.approx(now - 10)
    assert f.genre_affinity is not None
    aff = np.asarray(f.genre_affinity)
    assert aff.argmax() == 1 and aff[8] > 0  # Action (click + watch) > Drama (rate)
    unknown = await store.get_user("nobody", now)
    assert not unknown.known and unknown.features.history == () and unknown.segment == "unknown"


async def test_history_follows_event_time_not_arrival(
    writer: StoreWriter, store: OnlineStore
) -> None:
    """Late events land where they happened (as in the offline log); a repeat never moves an
    item forward, and one trimmed off the capped history does not come back on a repeat."""
    now = time.time()
    writer.apply_events([ev("u", "b", "click", now - 10), ev("u", "c", "click", now - 5)])
    writer.apply_events([ev("u", "a", "click", now - 20)])  # arrives after newer ones
    writer.apply_events([ev("u", "c", "like", now - 30), ev("u", "a", "watch", now - 1)])
    assert (await store.get_user("u", now)).features.history == ("c", "a", "b")
    cap = store.store.history_cap
    writer.apply_events([ev("v", f"i{k:03d}", "click", now - 1000 + k) for k in range(cap + 5)])
    writer.apply_events([ev("v", "i000", "click", now - 1)])  # first seen long ago, trimmed
    history = (await store.get_user("v", now)).features.history
    assert history == tuple(f"i{k:03d}" for k in range(5, cap + 5))


async def test_trending_popular_fresh(writer: StoreWriter, store: OnlineStore) -> None:
    now = time.time()
    writer.put_users([UserProfile("u1", age=20, gender="M")])
    writer.put_items(
        [ItemRecord(i, added_ts=now - age) for i, age in (("old", 30 * 86_400), ("new", 60))]
    )
    writer.apply_events([ev(f"x{k}", "steady", "click", now - 3 * 86_400) for k in range(20)])
    writer.apply_events([ev(f"y{k}", "burst", "click", now - 60) for k in range(10)])
    writer.apply_events([ev("u1", "liked", "like", now - 60)])
    top = await store.trending(3, now)
    assert top[0][0] == "burst" and top[0][1] == pytest.approx(10, rel=0.01)
    assert [i for i, _ in top].index("steady") > [i for i, _ in top].index("burst")
    # a week's half-life: a like a minute old keeps almost its weight 2, 20 clicks 3 days old 14.9
    week = store.store.segment_half_life_s
    liked = await store.popular_in_segment("18-24|m", 5, now)
    assert liked == [("liked", pytest.approx(2 * 2 ** (-60 / week)))]
    steady = (await store.popular_in_segment("all", 1, now))[0]
    assert steady == ("steady", pytest.approx(20 * 2 ** (-3 * 86_400 / week)))
    assert await store.fresh_items(5, now, 3600) == [("new", pytest.approx(now - 60))]
    assert await store.trending(0, now) == []


async def test_segment_popularity_decays_across_reference_moves(
    target: StoreTarget, store: OnlineStore
) -> None:
    """The definition (shared.features.popularity) at any read time, also after the segment's
    reference time moved forward many times (a half-life of a minute, events over 6 hours:
    the set is rescaled every 64 minutes) and with late events landing below the reference."""
    half = 60.0
    client = target.flushed()
    writer = StoreWriter(client, store=StoreConfig(segment_half_life_s=half))
    reader = OnlineStore(store.redis, store=StoreConfig(segment_half_life_s=half))
    writer.put_users([UserProfile("f", age=30, gender="F")])
    t0 = 1_750_000_000.0
    rng = np.random.default_rng(3)
    events = [ev("f", f"i{int(rng.integers(0, 6))}", "like" if k % 3 else "click",
                 t0 + float(rng.uniform(0, 6 * 3600))) for k in range(400)]  # fmt: skip
    order = sorted(events, key=lambda e: e.timestamp)
    late = order[::7]  # a seventh arrive after the rest, below the moved reference
    for k in range(0, len(order), 25):
        writer.apply_events([e for e in order[k : k + 25] if e not in late])
    writer.apply_events(late)
    refs = client.hgetall(keys.SEGMENT_REFS)
    client.close()
    assert set(refs) == {b"25-34|f", b"all"}
    assert all(float(r) > t0 + 64 * half for r in refs.values())  # moved on from the first
    now = max(e.timestamp for e in events) + 30
    want = segment_popularity(
        ["25-34|f"] * len(events), [e.item_id for e in events],
        np.array([EVENT_SEMANTICS[e.type].affinity_weight for e in events]),
        np.array([e.timestamp for e in events]), now, half,
    )  # fmt: skip
    for segment in ("25-34|f", "all"):
        got = dict(await reader.popular_in_segment(segment, 10, now))
        assert got.keys() == want[segment].keys()
        for item, value in want[segment].items():
            assert got[item] == pytest.approx(value, rel=1e-9), (segment, item)
    later = dict(await OnlineStore(store.redis, store=reader.store).popular_in_segment(
        "all", 10, now + half))  # fmt: skip
    assert later == pytest.approx({i: v / 2 for i, v in want["all"].items()}, rel=1e-9)


async def test_items_batch_catalog_and_cache(writer: StoreWriter, store: OnlineStore) -> None:
    now = time.time()
    writer.put_items(
        [ItemRecord("a", "A", ("Comedy",), 1995, now, True, frozenset({"US"})), ItemRecord("b")]
    )
    batch = await store.get_items(["a", "zz", "b", "a"], now)
    assert batch.found.tolist() == [True, False, True, True]
    assert batch.age_restricted.tolist() == [True, False, False, True]
    assert batch.regions[0] == {"US"} and batch.regions[1] == frozenset()
    assert batch.features[0].genres == ("Comedy",) and batch.features[1].genres == ()
    assert batch.ctr.dtype == np.float32 and batch.ctr[0] == pytest.approx(0.05)
    table = batch.table()
    assert table.genres.shape == (4, 19) and table.counts.shape == (4, 4)
    # A catalog write elsewhere (another process) is seen at once: the cache follows the version.
    writer.put_items([ItemRecord("a", "A2", ("Drama",))])
    again = await store.get_items(["a"], now)
    assert again.features[0].genres == ("Drama",) and not again.age_restricted[0]
    assert len(await store.get_items([], now)) == 0


async def test_ctr_is_smoothed(writer: StoreWriter, store: OnlineStore) -> None:
    now = time.time()
    writer.apply_events([ev("u", "a", "impression", now - 1) for _ in range(80)])
    writer.apply_events([ev("u", "a", "click", now - 1) for _ in range(20)])
    ctr = (await store.get_items(["a"], now)).ctr[0]
    cfg = store.store
    expected = (20 + cfg.ctr_prior_strength * cfg.ctr_prior_rate) / (80 + cfg.ctr_prior_strength)
    assert ctr == pytest.approx(expected, rel=1e-6)


def test_offline_builder_reads_item_genres_from_the_online_catalog(
    writer: StoreWriter, target: StoreTarget
) -> None:
    from shared.offline_store import catalog_item_genres

    writer.put_items([ItemRecord("a", genres=("Action", "Drama")), ItemRecord("b")])
    genres = catalog_item_genres(target.url, chunk=1, cluster=target.cluster)
    assert genres == {"a": ["Action", "Drama"], "b": []}
