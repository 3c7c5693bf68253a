"""Runs a simulated population against a live gateway and events API.

Each planned session starts at its time (open loop: a slow gateway does not slow arrivals),
asks ``GET /v1/recommendations?user_id=...&k=...`` (``&variant=`` when forced), lets the
behaviour model react to the returned ``items`` (position = index in the list), posts the
resulting events in batches and counts the outcome per arm: the rollout arms the answer names
(``arms``), else its ``variant``.
Given the same answers (items, request ids, variants) a run produces the same events.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeGuard
from urllib.parse import urlencode

import aiohttp
import numpy as np
import orjson

from loadtests.load_generator import KEEPALIVE_S
from loadtests.simulator.behaviour import Behaviour, draws, request_rng
from loadtests.simulator.ground_truth import GroundTruth
from loadtests.simulator.payloads import reaction_events
from loadtests.simulator.population import PlannedSession, Population
from loadtests.simulator.poster import EventPoster
from loadtests.simulator.settings import SimulatorSettings
from loadtests.simulator.summary import RunSummary
from shared.platform.auth import read_headers


class _Run:
    """The state one run shares across its sessions."""

    def __init__(
        self,
        settings: SimulatorSettings,
        truth: GroundTruth,
        http: aiohttp.ClientSession,
        gateway: str,
        poster: EventPoster,
        summary: RunSummary,
    ) -> None:
        self.settings = settings
        self.truth = truth
        self.behaviour = Behaviour(settings.behaviour)
        self.http = http
        self.gateway = gateway.rstrip("/") + "/v1/recommendations?"
        self.poster = poster
        self.summary = summary

    async def session(self, planned: PlannedSession) -> None:
        """One visit: its requests, spaced by the think time, each followed by a reaction."""
        done: set[str] = set()  # clicked or hidden earlier in the visit: not clicked again
        for index in range(planned.requests):
            if index:
                await asyncio.sleep(self.settings.population.think_s)
            answer = await self.recommend(planned.user_id)
            if answer is not None:
                self.react(planned, index, answer, done)

    async def recommend(self, user_id: str) -> dict[str, Any] | None:
        """The gateway's answer, or None (counted as an error) when there is none."""
        query: dict[str, str | int] = {"user_id": user_id, "k": self.settings.driver.k}
        if self.settings.driver.variant:
            query["variant"] = self.settings.driver.variant
        self.summary.requests += 1
        try:
            async with self.http.get(self.gateway + urlencode(query)) as resp:
                body = await resp.read()
                if resp.status != 200:
                    self.summary.error(f"gateway {resp.status}: {body[:200]!r}")
                    return None
            answer = orjson.loads(body)
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.summary.error(f"gateway: {exc!r}")
            return None
        if not _well_formed(answer):
            self.summary.error(f"gateway answer without items or request_id: {body[:200]!r}")
            return None
        self.summary.degraded += bool(answer.get("degraded"))
        return answer

    def react(
        self, planned: PlannedSession, index: int, answer: dict[str, Any], done: set[str]
    ) -> None:
        """Simulate the user on one answer, queue the events, count the arm."""
        t0 = time.time()
        k = self.settings.driver.k
        items = [str(item["item_id"]) for item in answer["items"]][:k]
        user = planned.user_id
        truth = self.truth.for_list(user, items)
        rand = draws(request_rng(self.settings.seed, user, planned.index, index), k)
        shown = np.ones((1, len(items)), dtype=bool)
        blocked = np.array([[item in done for item in items]], dtype=bool)
        reaction = self.behaviour.react(truth, rand[None, :, : len(items)], shown, blocked)
        acted = np.flatnonzero(reaction.clicked[0] | reaction.hidden[0])
        done.update(items[p] for p in acted)
        self.summary.arm(arm_of(answer)).add(user, reaction, len(items))
        events = reaction_events(
            reaction, items, user, str(answer["request_id"]), t0, self.settings.behaviour
        )
        self.poster.add(events)


def arm_of(answer: dict[str, Any]) -> str:
    """What served the answer: ``<rollout>:<arm>`` for each rollout in force (the gateway's
    ``arms``), else the variant it names."""
    arms = answer.get("arms")
    if isinstance(arms, dict) and arms:
        return ",".join(f"{rollout}:{arm}" for rollout, arm in sorted(arms.items()))
    return str(answer.get("variant") or "unknown")


def _well_formed(answer: Any) -> TypeGuard[dict[str, Any]]:
    """Whether an answer has what a reaction reads: a request id and items with ids."""
    if not isinstance(answer, dict) or not isinstance(answer.get("request_id"), str):
        return False
    items = answer.get("items")
    return isinstance(items, list) and all(isinstance(i, dict) and "item_id" in i for i in items)


async def run_simulation(
    settings: SimulatorSettings,
    truth: GroundTruth,
    gateway: str,
    events: str,
    rate: float,
    duration_s: float | None = None,
    n_sessions: int | None = None,
) -> RunSummary:
    """Run the population at ``rate`` requests/s for ``duration_s`` (or ``n_sessions``)."""
    population = Population(truth.known_users, truth.tables.user_activity, settings.population)
    plan = population.plan(settings.seed, rate, duration_s, n_sessions)
    summary = RunSummary(seed=settings.seed, sessions=len(plan))
    driver = settings.driver
    connector = aiohttp.TCPConnector(limit=driver.max_connections, keepalive_timeout=KEEPALIVE_S)
    timeout = aiohttp.ClientTimeout(total=driver.timeout_s)
    headers = read_headers()  # the read token, where the platform protects reads
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:
        poster = EventPoster(http, events, driver, summary)
        run = _Run(settings, truth, http, gateway, poster, summary)
        flusher = asyncio.create_task(poster.run())
        loop = asyncio.get_running_loop()
        start = loop.time()
        sessions = []
        for planned in plan:
            await asyncio.sleep(max(start + planned.start_s - loop.time(), 0.0))
            sessions.append(asyncio.create_task(run.session(planned)))
        await asyncio.gather(*sessions)
        await poster.close()
        await flusher
        summary.wall_s = loop.time() - start
    return summary
