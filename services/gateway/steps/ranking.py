"""Step ranking: the ranker's score and heads; retrieval order when it fails.

In an interleaving experiment both teams' rankers score the same candidates (two calls at
once), and the list the re-rankers see is team-draft interleaved from the two orders: each
drafted item gets a score that reproduces the draft's order and a ``team`` column (0: the
first arm, 1: the second; -1: not drafted), so diversity and exploration still apply and
every served item still says which ranker contributed it. ``team_neutral`` marks the items
both rankers proposed in the same round (the coin alone named their team): a click on one
credits neither (``shared.stats.interleaving``).
"""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np

from services.gateway.experiments.assign import Interleave
from services.gateway.request_run import RequestRun
from services.gateway.request_state import RequestState, seed_of
from services.gateway.steps.deps import StepDeps
from services.gateway.steps.reranking import RerankDepth, top_rows
from shared.stats.interleaving import team_draft


async def rank(req: RequestState, deps: StepDeps) -> None:
    """Score every candidate under the variant's ranker (both teams' when interleaving)."""
    il = req.experiment.interleave if req.experiment is not None else None
    if il is not None:
        await _interleaved(req, deps, il)
        return
    result = await deps.stage(req, "ranking").call(req.ctx(), req.frame)
    req.frame.update(result.frame)
    req.heads = list(result.info.heads)
    req.models["ranker"] = result.info.model


async def _interleaved(req: RequestState, deps: StepDeps, il: Interleave) -> None:
    ctx, stage = req.ctx(), deps.stage(req, "ranking")
    a, b = await asyncio.gather(
        stage.call(msgspec.structs.replace(ctx, variant=il.a), req.frame),
        stage.call(msgspec.structs.replace(ctx, variant=il.b), req.frame),
    )
    req.frame.update(a.frame)  # heads and columns of the first team
    # Draft as deep as the re-rankers look: nothing below that can be served.
    depth = max(deps.knobs.resolve(req.variant)[RerankDepth.name].depth, req.k)  # type: ignore[attr-defined]
    ids = req.frame.ids
    rows_a = top_rows(a.frame["score"], depth)
    rows_b = top_rows(b.frame["score"], depth)
    draft = team_draft([ids[r] for r in rows_a.tolist()], [ids[r] for r in rows_b.tolist()],
                       depth, np.random.default_rng(seed_of(req.request_id)))  # fmt: skip
    row_of = {item: row for row, item in enumerate(ids)}
    drafted = np.array([row_of[item] for item in draft.items], dtype=np.int64)
    n = len(ids)
    score = np.full(n, -1.0, dtype=np.float32)
    score[drafted] = 1.0 - np.arange(len(drafted), dtype=np.float32) / max(len(drafted), 1)
    team = np.full(n, -1, dtype=np.int8)
    team[drafted] = np.array([0 if t == "a" else 1 for t in draft.teams], dtype=np.int8)
    neutral = np.zeros(n, dtype=bool)
    neutral[drafted[list(draft.neutral)]] = True
    req.frame.set("score", score)
    req.frame.set("team", team)
    req.frame.set("team_neutral", neutral)
    req.heads = list(a.info.heads)
    req.models["ranker"] = f"{a.info.model} | {b.info.model}"


async def retrieval_order(req: RequestState, _deps: StepDeps, _run: RequestRun) -> str:
    """A score that reproduces retrieval order (1 for the first item, falling linearly)."""
    n = len(req.frame)
    req.frame.set("score", (1.0 - np.arange(n, dtype=np.float32) / max(n, 1)).astype(np.float32))
    return "retrieval order"
