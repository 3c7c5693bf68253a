"""Redis does not grow with the ids clients send (real Redis, the real ingest script).

Events for ever new users and items stream in waves; with the store's TTLs shortened to a
couple of seconds the key count and memory level off at what the last TTL window wrote, while
the number of distinct ids keeps growing (each wave has a heavy user too, whose seen filter of
the items pushed out of the window expires like the rest). The caps hold for one very active
user (seen window, history, the filter's bytes), for trending and for a segment's popularity;
the catalog's own items keep their counters. The caps and TTLs are checked on a Redis Cluster
too (the ``[cluster]`` cases).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from shared.events import Event
from shared.features.config import DEFAULT_CONFIG
from shared.online_store import keys
from shared.online_store.config import StoreConfig
from shared.online_store.seen_filter import SeenFilter
from shared.online_store.types import ItemRecord
from shared.online_store.writer import StoreWriter
from shared.platform.redis_client import SyncRedis
from tests.utils.stores import STORE_KINDS, is_mark, store_target

pytestmark = pytest.mark.integration

SHORT = StoreConfig(dedupe_ttl_s=2, impressions_ttl_s=2, user_ttl_s=2, unknown_item_ttl_s=2,
                    history_cap=20, seen_cap=50, trending_cap=100, segment_cap=80)  # fmt: skip


def _wave(n: int, tag: str) -> list[Event]:
    now = time.time()
    heavy = [Event(event_id=f"{tag}-h{k}", user_id=f"heavy-{tag}", item_id=f"i-{tag}-{k}",
                   type="click", timestamp=now - 200 + k) for k in range(120)]  # fmt: skip
    return [
        Event(event_id=f"{tag}-{k}", user_id=f"u-{tag}-{k}", item_id=f"i-{tag}-{k}",
              type=("click", "impression", "hide", "like")[k % 4], timestamp=now)
        for k in range(n)
    ] + heavy  # fmt: skip


def test_random_new_ids_leave_key_count_and_memory_flat(redis_client: redis.Redis) -> None:
    writer = StoreWriter(redis_client, store=SHORT)
    sizes, memory = [], []
    for wave in range(8):
        writer.apply_events(_wave(400, f"w{wave}-{uuid.uuid4().hex[:6]}"))
        time.sleep(1.0)
        # Touch every key first: one past its TTL is removed when touched, while Redis's own
        # expiry cycle lags on a loaded machine and DBSIZE would count the dead (two CI flakes).
        for _ in redis_client.scan_iter(count=1000):
            pass
        sizes.append(redis_client.dbsize())
        memory.append(int(redis_client.info("memory")["used_memory"]))
    # 3,200 users and items in all; each wave writes a few thousand keys that live 2 s
    assert max(sizes[4:]) <= 1.3 * max(sizes[:3]), sizes
    assert max(memory[4:]) <= 1.3 * max(memory[:3]), memory
    assert redis_client.zcard(keys.TRENDING) <= SHORT.trending_cap
    assert redis_client.zcard(keys.segment_popularity("all")) <= SHORT.segment_cap
    filters = list(redis_client.scan_iter(match=b"{u:heavy-*}:sf", count=1000))
    assert 1 <= len(filters) <= 3, filters  # the last waves' heavy users; the others expired


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest) -> Iterator[SyncRedis]:
    """A flushed store: a database of the session's Redis, or its Redis Cluster."""
    client = store_target(request, request.param, 0).flushed()
    yield client
    client.close()


def test_one_very_active_user_keeps_a_bounded_seen_window(store: SyncRedis) -> None:
    writer = StoreWriter(store, store=SHORT)
    t0 = time.time() - 1000
    clicks = [Event(event_id=f"a-{k}", user_id="busy", item_id=f"it-{k}", type="click",
                    timestamp=t0 + k) for k in range(300)]  # fmt: skip
    for k in range(0, 300, 100):
        writer.apply_events(clicks[k : k + 100])
    seen = [i.decode() for i in store.zrange(keys.user_seen("busy"), 0, -1)]
    assert seen == [f"it-{k}" for k in range(250, 300)]  # the latest seen_cap, oldest first
    kept = max(SHORT.history_cap, DEFAULT_CONFIG.hist_len)  # the model's history length at least
    assert store.zcard(keys.user_history("busy")) == kept <= SHORT.seen_cap
    assert 0 < store.ttl(keys.user_hash("busy")) <= SHORT.user_ttl_s
    assert 0 < store.ttl(keys.user_seen("busy")) <= SHORT.user_ttl_s
    # The 250 items pushed out of the window are in the filter, which never outgrows its size
    # (16 bytes a block) and expires with the user's other keys.
    seen_filter = keys.user_seen_filter("busy")
    assert store.strlen(seen_filter) == SHORT.seen_filter_blocks * 16
    assert 0 < store.ttl(seen_filter) <= SHORT.user_ttl_s
    reader = SeenFilter(SHORT.seen_filter_blocks, SHORT.seen_filter_hashes)
    pipe = store.pipeline()
    check = reader.queue_check(pipe, "busy", ["it-0", "it-249", "it-299", "never"])
    assert reader.hits(pipe.execute()[0], check).tolist() == [True, True, False, False]


def test_catalog_items_keep_their_counters_and_others_expire(store: SyncRedis) -> None:
    writer = StoreWriter(store, store=SHORT)
    writer.put_items([ItemRecord("known", genres=("Drama",))])
    now = time.time()
    writer.apply_events([
        Event(event_id="k1", user_id="x", item_id="known", type="click", timestamp=now),
        Event(event_id="k2", user_id="x", item_id="stranger", type="click", timestamp=now),
    ])  # fmt: skip
    assert store.ttl(keys.item_counters("known")) == -1  # no expiry: the catalog bounds it
    assert 0 < store.ttl(keys.item_counters("stranger")) <= SHORT.unknown_item_ttl_s
    marks = [k for k in store.scan_iter(count=1000) if is_mark(k)]
    assert len(marks) == (4 if isinstance(store, RedisCluster) else 2)  # a part's each
    assert all(0 < store.ttl(k) <= SHORT.dedupe_ttl_s for k in marks)
