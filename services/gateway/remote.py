"""RemoteStages: the StageBackend that calls the stage services over pooled HTTP connections."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from shared.features import UserFeatures
from shared.http_client import ServiceClient
from shared.online_store.types import UserState
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.items import ItemColumns
from shared.pipeline.rerank_state import RerankInput
from shared.pipeline.tunables import DEFAULT_TUNABLES, Tunables
from shared.pipeline.types import Candidates, FilterResult, Reranked, Scores
from shared.pipeline.wire import (
    decode_candidates,
    decode_filter_result,
    decode_reranked,
    decode_scores,
    encode_filter_input,
    encode_rank_request,
    encode_rerank_input,
)

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _body(payload: dict[str, Any]) -> orjson.Fragment:
    """Pre-serialised JSON (numpy arrays written natively), passed through ServiceClient as is."""
    return orjson.Fragment(orjson.dumps(payload, option=_OPTS))


class RemoteStages:
    """One pooled client per stage service; a decode problem counts as a stage failure."""

    def __init__(
        self,
        candidates: ServiceClient,
        filtering: ServiceClient,
        ranking: ServiceClient,
        reranking: ServiceClient,
    ) -> None:
        self.cand = candidates
        self.filt = filtering
        self.rank_client = ranking
        self.rerank_client = reranking

    async def candidates(
        self, user_id: str, now: float, tunables: Tunables, user: asyncio.Task[UserState],
        timeout_s: float,
    ) -> Candidates:  # fmt: skip
        """POST /v1/candidates (the service reads the user itself, in parallel with us)."""
        body: dict[str, Any] = {"user_id": user_id, "now": now}
        if tunables != DEFAULT_TUNABLES:
            body["tunables"] = tunables.model_dump(exclude_defaults=True)
        d = await self.cand.post_json("/v1/candidates", _body(body), timeout_s=timeout_s)
        return decode_candidates(d)

    async def filter(self, batch: FilterInput, timeout_s: float) -> FilterResult:
        """POST /v1/filter."""
        body = _body(encode_filter_input(batch))
        return decode_filter_result(
            await self.filt.post_json("/v1/filter", body, timeout_s=timeout_s)
        )

    async def rank(
        self, user: UserFeatures, items: ItemColumns, now: float,
        weights: dict[str, float] | None, timeout_s: float,
    ) -> Scores:  # fmt: skip
        """POST /v1/rank."""
        body = _body(encode_rank_request(user, items, now, weights))
        return decode_scores(
            await self.rank_client.post_json("/v1/rank", body, timeout_s=timeout_s)
        )

    async def rerank(self, inp: RerankInput, timeout_s: float) -> Reranked:
        """POST /v1/rerank."""
        body = _body(encode_rerank_input(inp))
        d = await self.rerank_client.post_json("/v1/rerank", body, timeout_s=timeout_s)
        return decode_reranked(d)
