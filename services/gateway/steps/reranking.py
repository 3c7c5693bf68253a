"""Step reranking: the re-rank chain over the top ranked items; the top k when it fails."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.gateway.request_run import RequestRun
from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps
from shared.frame import Frame
from shared.pipeline.knobs import Knobs


class RerankDepthKnobs(Knobs, frozen=True):
    """How many of the best ranked items the re-rankers see."""

    depth: Annotated[int, msgspec.Meta(ge=10, le=1000)] = 100


class RerankDepth:
    """The gateway's own knob of this step (variants turn it as ``reranking.depth``)."""

    name = "reranking"
    needs = ()
    provides = ()
    Knobs = RerankDepthKnobs


def top_rows(score: np.ndarray, n: int) -> np.ndarray:
    """Rows of the n highest scores, best first (stable for ties: retrieval order wins)."""
    if len(score) > n:
        part = np.argpartition(-score, n - 1)[:n]
        return part[np.argsort(-score[part], kind="stable")]
    return np.argsort(-score, kind="stable")


async def rerank(req: RequestState, deps: StepDeps) -> None:
    """Fatigue, freshness, MMR, exploration over the top ``depth`` items."""
    knobs = deps.knobs.resolve(req.variant)[RerankDepth.name]
    top = top_rows(req.frame["score"], max(knobs.depth, req.k))  # type: ignore[attr-defined]
    result = await deps.stage(req, "reranking").call(req.ctx(), req.frame.take(top))
    rows = _rows_within(result.frame["row"], len(top), "row")
    req.served, req.served_rows = result.frame, top[rows]
    req.rerankers = list(result.info.applied)
    pool = _rows_within(np.asarray(result.info.explore_pool, np.int64), len(top), "pool row")
    req.explore_pool_rows = top[pool] if len(pool) else None
    if result.info.model:
        req.models.setdefault("item_index", result.info.model)


def _rows_within(rows: np.ndarray, n: int, what: str) -> np.ndarray:
    """``rows`` of the ``n`` sent; ValueError naming the first one out of range."""
    if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= n):
        bad = int(rows.max()) if int(rows.max()) >= n else int(rows.min())
        raise ValueError(f"reranking answered {what} {bad} of {n}")
    return rows


async def top_k(req: RequestState, _deps: StepDeps, _run: RequestRun) -> str:
    """The first k by ranker score, no exploration."""
    rows = top_rows(req.frame["score"], req.k)[: req.k]
    k = len(rows)
    req.served_rows = rows
    req.served = Frame(
        [req.frame.ids[r] for r in rows.tolist()],
        {
            "row": rows, "final_score": req.frame["score"][rows],
            "propensity": np.ones(k, dtype=np.float32), "explored": np.zeros(k, dtype=bool),
        },
    )  # fmt: skip
    return "top k by ranker score"
