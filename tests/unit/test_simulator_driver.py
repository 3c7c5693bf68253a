"""The live driver against an in-process gateway and events API (real HTTP on loopback)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from deploy.local.processes import free_port
from loadtests.simulator.driver import run_simulation
from loadtests.simulator.offline import unit_interval
from loadtests.simulator.population import Population
from loadtests.simulator.settings import DriverSettings, PopulationSettings, SimulatorSettings
from shared.events import EventBatch, validation_context
from tests.utils.simulator import ground_truth


@dataclass
class FakeStack:
    """Answers like the gateway and the events API; records what it got."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    variants_asked: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    posts: int = 0


STACK = web.AppKey("stack", FakeStack)


async def _recommend(request: web.Request) -> web.Response:
    """Canary (half the users by hash) serves the truth's top items, production the most
    popular; user sim-new-0 gets a 503 and users whose id ends in 7 a degraded answer."""
    stack, truth = request.app[STACK], ground_truth()
    user, k = request.query["user_id"], int(request.query["k"])
    if user == "sim-new-0":
        return web.Response(status=503, text="unavailable")
    canary = unit_interval("test", user) < 0.5
    variant = request.query.get("variant") or ("canary" if canary else "production")
    stack.variants_asked[request.query.get("variant", "")] += 1
    items = truth.top_items(user, k) if canary else truth.popular_items(k)
    stack.counters[user] += 1
    body = {
        "request_id": f"{user}-{stack.counters[user]}",
        "user_id": user,
        "variant": variant,
        "items": [{"item_id": i, "title": "", "genres": [], "score": 1.0} for i in items],
        "degraded": user.endswith("7"),
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _events(request: web.Request) -> web.Response:
    """The events API's contract: 422 for a bad batch, 202 once accepted; the first post
    of a run gets a 503 (the client must retry the same batch)."""
    stack = request.app[STACK]
    stack.posts += 1
    if stack.posts == 1:
        return web.Response(status=503, headers={"Retry-After": "0"})
    try:
        batch = EventBatch.model_validate(await request.json(), context=validation_context())
    except ValidationError as exc:
        return web.Response(status=422, text=str(exc))
    stack.events.extend(e.model_dump(exclude_none=True) for e in batch.events)
    return web.json_response({"accepted": len(batch.events)}, status=202)


@pytest.fixture
async def stack() -> AsyncIterator[FakeStack]:
    app = web.Application()
    app[STACK] = FakeStack()
    app.router.add_get("/v1/recommendations", _recommend)
    app.router.add_post("/v1/events", _events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    app[STACK].url = f"http://127.0.0.1:{port}"
    yield app[STACK]
    await runner.cleanup()


def _settings(seed: int = 3, variant: str | None = None) -> SimulatorSettings:
    return SimulatorSettings(
        seed=seed,
        population=PopulationSettings(new_user_share=0.2, think_s=0.0),
        driver=DriverSettings(k=10, variant=variant, batch_size=50, flush_interval_s=0.05),
    )


def _actions(events: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    """Events without their clock-dependent fields (the timestamps)."""
    return Counter(
        (e["user_id"], e["item_id"], e["type"], e["position"], e.get("value")) for e in events
    )


async def _run(stack: FakeStack, settings: SimulatorSettings, rate: float = 300) -> dict[str, Any]:
    truth = ground_truth()
    summary = await run_simulation(settings, truth, stack.url, stack.url, rate=rate, n_sessions=80)
    return summary.as_dict()


async def test_a_run_posts_every_event_and_counts_arms_errors_and_degraded(
    stack: FakeStack,
) -> None:
    summary = await _run(stack, _settings())
    posted = Counter(e["type"] for e in stack.events)
    assert summary["events_posted"] == dict(posted) and summary["events_failed"] == 0
    assert len({e["event_id"] for e in stack.events}) == len(stack.events)
    arms = summary["arms"]
    assert set(arms) == {"canary", "production"}
    assert sum(a["impressions"] for a in arms.values()) == posted["impression"]
    assert sum(a["clicks"] for a in arms.values()) == posted["click"]
    assert summary["requests"] == sum(a["requests"] for a in arms.values()) + summary["errors"]
    assert summary["errors"] >= 1 and "503" in summary["error_samples"][0]  # sim-new-0
    assert summary["degraded"] == sum(stack.counters[u] for u in stack.counters if u[-1] == "7")
    # The truth's own top items against the most popular: better by its expected clicks.
    canary, production = arms["canary"], arms["production"]
    assert canary["expected_clicks_per_request"] > production["expected_clicks_per_request"]


RATE = 30.0  # sessions a second in the determinism test


async def test_the_same_seed_and_answers_give_the_same_events(stack: FakeStack) -> None:
    # The fake numbers a user's requests in arrival order; at 30 sessions a second seed 5 never
    # has two sessions of one user within 2 s, so the numbering (the request ids) cannot depend
    # on timing (at 300 a second, 0.2 s apart, a loaded machine made two of them overlap).
    truth = ground_truth()
    plan = Population(truth.known_users, truth.tables.user_activity, _settings().population)
    starts: dict[str, float] = {}
    for s in plan.plan(5, rate=RATE, n_sessions=80):
        assert s.start_s - starts.get(s.user_id, -math.inf) > 2.0
        starts[s.user_id] = s.start_s
    first = await _run(stack, _settings(seed=5), RATE)
    events_first = list(stack.events)
    stack.events.clear()
    stack.counters.clear()
    second = await _run(stack, _settings(seed=5), RATE)
    assert _actions(stack.events) == _actions(events_first)
    assert {e["event_id"] for e in stack.events} == {e["event_id"] for e in events_first}
    assert first["arms"] == second["arms"]
    stack.events.clear()
    stack.counters.clear()
    await _run(stack, _settings(seed=6))
    assert _actions(stack.events) != _actions(events_first)


async def test_a_forced_variant_is_asked_for_and_names_the_arm(stack: FakeStack) -> None:
    summary = await _run(stack, _settings(variant="diverse"))
    assert set(summary["arms"]) == {"diverse"}
    assert set(stack.variants_asked) == {"diverse"}


async def test_a_dead_events_api_is_counted_not_fatal(stack: FakeStack) -> None:
    truth = ground_truth()
    dead = f"http://127.0.0.1:{free_port()}"
    settings = _settings().model_copy(update={"driver": DriverSettings(post_retries=1)})
    summary = await run_simulation(settings, truth, stack.url, dead, rate=300, n_sessions=10)
    assert summary.events_failed > 0 and summary.batches_posted == 0
    assert summary.requests > 0 and sum(a.requests for a in summary.arms.values()) > 0
    assert any("events API" in e for e in summary.error_samples)
