"""Serving runtime pieces in-process: the gateway warm-up that gates readiness, the short read
caches, and the wire format between the gateway and the stage services."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from services.gateway.pipeline import build_in_process
from shared.online_store import read_cache
from shared.online_store.read_cache import CounterCache, ListCache
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.merge import merge_sources
from shared.pipeline.transport import _OPTS
from shared.pipeline.types import Reranked, Scores, SourceResult
from shared.pipeline.warmup import GatewayWarmUp, synthetic_rerank_input
from shared.pipeline.wire import (
    RerankBody,
    decode_candidates,
    decode_reranked,
    decode_scores,
    encode_candidates,
    encode_rerank_input,
    encode_reranked,
    encode_scores,
)
from tests.integration.serving_fixtures import (
    MemoryStore,
    catalog,
    load_models,
    write_synthetic_bundle,
)

ITEMS = catalog(200)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_models(write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS))


def _wire(payload: Any) -> Any:
    return orjson.loads(orjson.dumps(payload, option=_OPTS))


class _Broken:
    """Wraps stages; ``filter`` fails while ``broken`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.broken = inner, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def filter(self, batch: Any, timeout_s: float) -> Any:
        if self.broken:
            raise ConnectionError("filtering unreachable")
        return await self.inner.filter(batch, timeout_s)


async def test_warm_up_gates_readiness_until_every_stage_answered(models: Any) -> None:
    store = MemoryStore(ITEMS)
    stages = _Broken(build_in_process(store, models, LatencyBudget()).orchestrator.stages)
    preloads: list[int] = []

    async def preload() -> None:
        preloads.append(1)

    warm = GatewayWarmUp(stages, store, copies=3, give_up_s=60, before=preload)  # type: ignore[arg-type]
    warm.start()
    for _ in range(100):  # the first round's outcome (a busy machine may take a while)
        if "filtering unreachable" in (await warm.check())[1]:
            break
        await asyncio.sleep(0.1)
    ok, reason = await warm.check()
    assert not ok and "filtering unreachable" in reason
    stages.broken = False  # the stage comes up: the next round succeeds
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
    stages = _Broken(build_in_process(store, models, LatencyBudget()).orchestrator.stages)
    warm = GatewayWarmUp(stages, store, copies=2, give_up_s=0.2)  # type: ignore[arg-type]
    warm.start()
    await asyncio.sleep(1.0)
    ok, reason = await warm.check()
    assert ok and reason.startswith("warm-up incomplete after 0 s")
    assert "filtering unreachable" in reason
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


def test_wire_round_trips() -> None:
    cands = merge_sources(
        [
            SourceResult("a", ["1", "2"], np.array([0.5, 0.25], np.float32)),
            SourceResult("b", ["2", "3"], np.array([3.0, 1.0], np.float32), error=None),
        ],
        10,
    )
    cands.model_versions = {"ranker": "v1"}
    back = decode_candidates(_wire(encode_candidates(cands)))
    assert back.item_ids == cands.item_ids and back.model_versions == {"ranker": "v1"}
    assert back.sources_of(1) == cands.sources_of(1) == {"a": 0.25, "b": 3.0}
    scores = Scores(np.array([0.1, 0.2], np.float32), {"p": np.array([1, 0], np.float32)}, "v")
    got = decode_scores(_wire(encode_scores(scores)))
    assert got.score.tolist() == pytest.approx([0.1, 0.2]) and got.model_version == "v"
    rr = Reranked(
        np.array([1, 0]),
        np.array([0.9, 0.1], np.float32),
        np.ones(2, np.float32),
        np.array([False, True]),
        {"freshness": np.array([0.1, 0], np.float32)},
        ["freshness"],
    )
    back_rr = decode_reranked(_wire(encode_reranked(rr)))
    assert back_rr.rows.tolist() == [1, 0] and back_rr.explored.tolist() == [False, True]
    inp = synthetic_rerank_input([f"i{j}" for j in range(5)])
    body = RerankBody.model_validate(_wire(encode_rerank_input(inp)))
    assert body.to_input().item_ids == inp.item_ids and body.k == inp.k


def test_wire_rejects_inconsistent_columns() -> None:
    inp = _wire(encode_rerank_input(synthetic_rerank_input(["a", "b", "c"])))
    inp["score"] = inp["score"][:2]
    with pytest.raises(ValidationError, match="score has 2 entries, item_ids has 3"):
        RerankBody.model_validate(inp)


async def test_warm_up_goes_on_after_giving_up(models: Any) -> None:
    store = MemoryStore(ITEMS)
    stages = _Broken(build_in_process(store, models, LatencyBudget()).orchestrator.stages)
    warm = GatewayWarmUp(stages, store, copies=1, give_up_s=0.1, retry_s=0.05)  # type: ignore[arg-type]
    warm.start()
    await asyncio.sleep(0.5)
    assert (await warm.check())[1].startswith("warm-up incomplete")
    stages.broken = False  # a stage that comes up late still gets warm connections
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
