"""Serving runtime pieces in-process: the gateway warm-up that gates readiness and the short
read caches of the online store."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from services.gateway.warmup import GatewayWarmUp
from shared.online_store import read_cache
from shared.online_store.read_cache import CounterCache, ListCache
from tests.integration.serving_fixtures import (
    MemoryStore,
    catalog,
    load_models,
    write_synthetic_bundle,
)
from tests.unit.test_gateway_runner import build

ITEMS = catalog(200)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_models(write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS))


def _broken_filtering(store: MemoryStore, models: Any) -> tuple[Any, Any]:
    """The runner's deps with a filtering stage that fails until told otherwise."""
    runner, clients = build(store, models)
    clients["filtering"].fail = True
    return runner.deps, clients["filtering"]


async def test_warm_up_gates_readiness_until_every_stage_answered(models: Any) -> None:
    store = MemoryStore(ITEMS)
    deps, filtering = _broken_filtering(store, models)
    preloads: list[int] = []

    async def preload() -> None:
        preloads.append(1)

    warm = GatewayWarmUp(deps, copies=3, give_up_s=60, before=preload)
    warm.start()
    for _ in range(100):  # the first round's outcome (a busy machine may take a while)
        if "filtering service unreachable" in (await warm.check())[1]:
            break
        await asyncio.sleep(0.1)
    ok, reason = await warm.check()
    assert not ok and "filtering service unreachable" in reason
    filtering.fail = False  # the stage comes up: the next round succeeds
    for _ in range(50):
        if (await warm.check())[0]:
            break
        await asyncio.sleep(0.1)
    ok, reason = await warm.check()
    assert ok and reason.startswith("ok: every stage answered")
    assert preloads == [1]  # the catalog preload ran once
    assert store.calls.count("get_items") >= 3  # each copy read items (one connection each)
    await warm.stop()


async def test_warm_up_gives_up_and_says_why(models: Any) -> None:
    store = MemoryStore(ITEMS)
    deps, _ = _broken_filtering(store, models)
    warm = GatewayWarmUp(deps, copies=2, give_up_s=0.2)
    warm.start()
    await asyncio.sleep(1.0)
    ok, reason = await warm.check()
    assert ok and reason.startswith("warm-up incomplete after 0 s")
    assert "filtering service unreachable" in reason
    await warm.stop()


def test_counter_cache_reuses_rows_for_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"t": 100.0}
    monkeypatch.setattr(read_cache.time, "monotonic", lambda: clock["t"])
    cache = CounterCache(width=3, ttl_s=1.0)
    values, fetch = cache.read(np.array([1, 2]), bucket=7)
    assert fetch.tolist() == [0, 1] and not values.any()
    cache.store(np.array([1, 2, 0]), np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), bucket=7)
    values, fetch = cache.read(np.array([2, 3, 1, 0]), bucket=7)
    assert fetch.tolist() == [1, 3]  # never stored, and row 0 (not in the catalog)
    assert values[[0, 2]].tolist() == [[4, 5, 6], [1, 2, 3]]
    assert cache.read(np.array([1]), bucket=8)[1].tolist() == [0]  # a new time bucket
    clock["t"] += 1.5  # expired
    assert cache.read(np.array([1]), bucket=7)[1].tolist() == [0]
    cache.store(np.array([1]), np.ones((1, 3)), bucket=7)
    cache.clear()  # the catalog's rows were reassigned
    assert cache.read(np.array([1]), bucket=7)[1].tolist() == [0]
    off = CounterCache(width=3, ttl_s=0.0)
    off.store(np.array([1]), np.ones((1, 3)), bucket=7)
    assert off.read(np.array([1]), bucket=7)[1].tolist() == [0]  # ttl 0: always read Redis


def test_list_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"t": 0.0}
    monkeypatch.setattr(read_cache.time, "monotonic", lambda: clock["t"])
    cache = ListCache(ttl_s=1.0)
    cache.put("k", [1])
    assert cache.get("k") == [1]
    clock["t"] = 2.0
    assert cache.get("k") is None
    cache.put("k", [2])
    cache.clear()
    assert cache.get("k") is None and ListCache(0).get("k") is None


async def test_warm_up_goes_on_after_giving_up(models: Any) -> None:
    store = MemoryStore(ITEMS)
    deps, filtering = _broken_filtering(store, models)
    warm = GatewayWarmUp(deps, copies=1, give_up_s=0.1, retry_s=0.05)
    warm.start()
    await asyncio.sleep(0.5)
    assert (await warm.check())[1].startswith("warm-up incomplete")
    filtering.fail = False  # a stage that comes up late still gets warm connections
    for _ in range(50):
        if (await warm.check())[1].startswith("ok"):
            break
        await asyncio.sleep(0.05)
    assert (await warm.check())[1].startswith("ok: every stage answered")
    await warm.stop()


def test_gateway_finds_stages_on_the_ports_they_were_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.gateway.settings import Settings

    assert Settings().ranking_url == "http://127.0.0.1:8005"
    monkeypatch.setenv("CASCADE_RANKING_PORT", "9105")  # what the local runtime sets
    assert Settings().ranking_url == "http://127.0.0.1:9105"
    monkeypatch.setenv("CASCADE_RANKING_URL", "http://ranking:8005")  # explicit wins
    assert Settings().ranking_url == "http://ranking:8005"
