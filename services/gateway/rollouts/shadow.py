"""ShadowRunner: a request run again under the shadow variant, after its answer went out.

Never on the latency path: the production answer is written before the shadow task gets the
event loop, the shadow reuses the user production read (same inputs, one Redis read fewer)
and at most ``max_in_flight`` shadows run at once; a request that finds them all busy is not
shadowed, and is counted (``cascade_shadow_requests_total{outcome="dropped"}``). A shadow
never changes what is served: nothing it computes is logged to the served topic or returned.

Each run is compared with production per stage (``shared.stats.ranking_diff``):

- ``candidates``: the candidate sets (production's recall in the shadow's, their Jaccard);
- ``ranked``: the top ``k`` by ranker score (overlap@k, Jaccard@k, Kendall tau, RBO) and
  the score deltas on every item both rankers scored;
- ``final``: the served lists after re-ranking (same measures as ``ranked``).

And, when production's list had exploration slots, an off-policy record: for each slot the
item shown, its propensity (drawn uniformly from the exploration pool) and whether the
shadow's ranker, and production's, would have picked that item from the same pool (their
best-scored pool item). Clicks joined to it by the controller give IPS / SNIPS estimates of
each ranker's click rate at the slot (``shared.stats.off_policy``): the candidate judged on
production's own randomised traffic before any user sees it. It goes to the served topic as
a record of its own (``off_policy`` set), which the exposure join keeps apart from exposures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import shared.stats.ranking_diff as rd
from services.gateway.request_state import RequestState
from services.gateway.rollouts import metrics
from services.gateway.rollouts.canary import slot_failure
from services.gateway.rollouts.split import Decision
from services.gateway.runner import Runner
from services.gateway.steps.reranking import top_rows
from shared.frame import Frame
from shared.pipeline.context import VariantSpec

log = logging.getLogger(__name__)


def ranked_ids(req: RequestState, k: int) -> list[str]:
    """The ``k`` best items by ranker score (the ranked frame, before re-ranking)."""
    if "score" not in req.frame or not len(req.frame):
        return []
    rows = top_rows(req.frame["score"], k)[:k].tolist()
    return [req.frame.ids[r] for r in rows]


def served_ids(req: RequestState) -> list[str]:
    """The final list's item ids."""
    return req.served.ids if req.served is not None else []


def compare(prod: RequestState, shadow: RequestState) -> dict[str, dict[str, float]]:
    """Agreement of the shadow with production, per stage and measure."""
    k = prod.k
    out: dict[str, dict[str, float]] = {}
    prod_cands = prod.candidates.ids if prod.candidates is not None else []
    shadow_cands = shadow.candidates.ids if shadow.candidates is not None else []
    if prod_cands:
        out["candidates"] = {
            "recall": rd.recall(prod_cands, shadow_cands),
            "jaccard_at_k": rd.jaccard_at_k(prod_cands, shadow_cands, len(prod_cands)),
        }
    for stage, a, b in (
        ("ranked", ranked_ids(prod, k), ranked_ids(shadow, k)),
        ("final", served_ids(prod), served_ids(shadow)),
    ):
        if a:
            out[stage] = {
                "overlap_at_k": rd.overlap_at_k(a, b, k),
                "jaccard_at_k": rd.jaccard_at_k(a, b, k),
                "kendall_tau": rd.kendall_tau(a, b),
                "rbo": rd.rank_biased_overlap(a, b),
            }
    return out


def score_delta(prod: RequestState, shadow: RequestState) -> float | None:
    """Mean absolute ranker-score difference on the items both ranked (None: none shared)."""
    if "score" not in prod.frame or "score" not in shadow.frame:
        return None
    mean_abs, _max_abs, shared = rd.score_deltas(
        prod.frame.ids, np.asarray(prod.frame["score"]),
        shadow.frame.ids, np.asarray(shadow.frame["score"]),
    )  # fmt: skip
    return mean_abs if shared else None


def best_in_pool(req: RequestState, pool: list[str]) -> str | None:
    """The pool item ``req``'s ranker scored highest (None: it scored none of them)."""
    row_of = {item: r for r, item in enumerate(req.frame.ids)}
    return _best(req, [row_of[i] for i in pool if i in row_of])


def _best(req: RequestState, rows: list[int]) -> str | None:
    """The item of ``rows`` with the highest ranker score (None: none, or nothing scored)."""
    if "score" not in req.frame or not rows:
        return None
    score = np.asarray(req.frame["score"])[rows]
    return req.frame.ids[rows[int(np.argmax(score))]]


def off_policy_slots(prod: RequestState, shadow: RequestState) -> list[dict[str, Any]]:
    """Production's exploration slots with the shadow's and production's picks from the pool.

    Each: ``item`` shown, its ``p`` (propensity), ``candidate`` / ``production``: whether
    that ranker's best pool item is the one shown (a deterministic policy's probability of
    the logged action). Empty when production did not explore or the shadow scored no pool
    item (a retrieval shadow whose candidates miss the pool has no support there).
    """
    served, rows = prod.served, prod.explore_pool_rows
    if served is None or rows is None or not len(rows) or not len(served):
        return []
    pool_rows = rows.tolist()
    production = _best(prod, pool_rows)
    candidate = best_in_pool(shadow, [prod.frame.ids[r] for r in pool_rows])
    if candidate is None or production is None:
        return []
    explored = np.asarray(served["explored"], dtype=bool)
    propensity = np.asarray(served["propensity"], dtype=np.float64)
    return [
        {"item": served.ids[i], "p": round(float(propensity[i]), 8),
         "candidate": served.ids[i] == candidate, "production": served.ids[i] == production}
        for i in np.flatnonzero(explored).tolist()
    ]  # fmt: skip


ServedLogger = Callable[[str, dict[str, Any]], None]


class ShadowRunner:
    """Runs shadows in the background, bounded, and records how they compare."""

    def __init__(self, runner: Runner, max_in_flight: int = 4, rank_only: Runner | None = None,
                 log: ServedLogger | None = None) -> None:  # fmt: skip
        self.runner = runner  # the pipeline without the user step (the user is reused)
        # Ranking and re-ranking only: a ranker's shadow starts from production's filtered
        # candidates, which it would compute again identically (half the shadow's CPU).
        self.rank_only = rank_only
        self.max_in_flight = max_in_flight
        self.log = log  # the served topic, for off-policy records (None: not logged)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Shadows running now."""
        return len(self._tasks)

    def submit(self, prod: RequestState, decision: Decision) -> bool:
        """Start the shadow of ``prod`` (False: dropped, every shadow slot is busy)."""
        if decision.shadow is None:
            return False
        if len(self._tasks) >= self.max_in_flight:
            for a in decision.shadowed_by:
                metrics.SHADOW_RUNS.labels(a.rollout_id, "dropped").inc()
            return False
        task = asyncio.get_running_loop().create_task(self._run(prod, decision))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _from_ranking(self, prod: RequestState, decision: Decision) -> RequestState | None:
        """The shadow of a ranker-only rollout, starting at ranking (None: not applicable)."""
        slots = {slot for a in decision.shadowed_by for slot in a.slots}
        interleaved = prod.experiment is not None and prod.experiment.interleave is not None
        if self.rank_only is None or slots != {"ranker"} or interleaved or not len(prod.frame):
            return None
        assert decision.shadow is not None
        # production's variant (its experiment arms included) with the ranker at shadow
        models = {**prod.variant.models, "ranker": decision.shadow.alias("ranker")}
        variant = VariantSpec(name=decision.shadow.name, models=models, knobs=prod.variant.knobs)
        shadow = RequestState(prod.request_id, prod.user_id, prod.k, prod.now, variant,
                              user=prod.user_state())  # fmt: skip
        # the steps replace columns, never write into them: a shallow copy is enough
        shadow.frame = Frame(prod.frame.ids, None)
        shadow.frame.columns = dict(prod.frame.columns)
        shadow.candidates, shadow.sources = prod.candidates, prod.sources
        shadow.filters, shadow.removed = prod.filters, prod.removed
        return shadow

    async def _run(self, prod: RequestState, decision: Decision) -> None:
        assert decision.shadow is not None
        shadow = self._from_ranking(prod, decision)
        runner = self.runner if shadow is None else self.rank_only
        if shadow is None:
            shadow = RequestState(prod.request_id, prod.user_id, prod.k, prod.now,
                                  decision.shadow, user=prod.user_state())  # fmt: skip
            # the same experiment arms as production (re-derived from the same user state)
            shadow.experiments, shadow.claimed_slots = prod.experiments, prod.claimed_slots
        assert runner is not None
        started = time.perf_counter()
        try:
            await runner.run(shadow)
        except Exception:  # a shadow bug is the shadow's error, never production's
            log.exception("shadow run failed")
            for a in decision.shadowed_by:
                metrics.SHADOW_RUNS.labels(a.rollout_id, "error").inc()
            return
        elapsed = time.perf_counter() - started
        figures = compare(prod, shadow)
        delta = score_delta(prod, shadow)
        compared = []
        for a in decision.shadowed_by:
            metrics.SHADOW_LATENCY.labels(a.rollout_id).observe(elapsed)
            failure = slot_failure(shadow, a.slots)
            if failure is not None:  # a fallback's list says nothing about the model
                metrics.SHADOW_RUNS.labels(a.rollout_id, "error").inc()
                log.info("shadow failed", extra={"rollout": a.rollout_id, "reason": failure})
                continue
            metrics.SHADOW_RUNS.labels(a.rollout_id, "compared").inc()
            compared.append(a.rollout_id)
            for stage, measures in figures.items():
                for measure, value in measures.items():
                    if value == value:  # nan: not defined for this pair (too few shared)
                        metrics.SHADOW_DIFF.labels(a.rollout_id, stage, measure).observe(value)
            if delta is not None:
                metrics.SHADOW_SCORE_DELTA.labels(a.rollout_id).observe(delta)
        slots = off_policy_slots(prod, shadow) if compared and self.log is not None else []
        if slots:
            assert self.log is not None
            self.log(prod.user_id, {"request_id": prod.request_id, "user_id": prod.user_id,
                                    "ts": prod.now, "off_policy": {"rollouts": compared,
                                                                   "slots": slots}})  # fmt: skip

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for the running shadows (at shutdown), cancelling what is left after that."""
        tasks: list[Any] = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for t in pending:
            t.cancel()
