"""What one GET /v1/recommendations does, in order. This tuple is what the runner executes.

Each step names what it calls (a stage service, or the online store), its entry in
config/latency_budget.yaml and its fallback: when the call fails or runs past its deadline,
the fallback serves instead and the answer is marked degraded with both reasons. A
``Parallel`` group would run its steps at the same time; the user's state is read before
candidate generation on purpose, because every stage then gets the same user without reading
Redis again (measured: a second user read in candidate generation cost more CPU than the
overlap saved latency; docs/serving.md). The same steps run in both modes: with
``CASCADE_GATEWAY_MODE=in_process`` each stage call is a method call, otherwise an HTTP call
to the stage's service (``stage_clients``).

Adding a stage is one ``Step`` here, its two functions in ``steps/``, and its service.
"""

from __future__ import annotations

from services.gateway.runner import Pipeline, Step
from services.gateway.steps import (
    candidates,
    experiments,
    filtering,
    item_features,
    ranking,
    reranking,
)
from services.gateway.steps import user_features as user

PIPELINE: Pipeline = (
    Step("user_features", user.read_user, fallback=user.unknown_user),
    Step("experiments", experiments.assign_arms, fallback=experiments.without_experiments),
    Step("candidates", candidates.generate, fallback=candidates.trending_list,
         stage="candidates"),
    Step("item_features", item_features.read_items, fallback=item_features.cached_attributes,
         skip_empty=True),
    Step("filtering", filtering.filter_candidates, fallback=filtering.filter_here,
         stage="filtering", skip_empty=True),
    Step("ranking", ranking.rank, fallback=ranking.retrieval_order, stage="ranking",
         skip_empty=True),
    Step("reranking", reranking.rerank, fallback=reranking.top_k, stage="reranking",
         skip_empty=True),
)  # fmt: skip

# The gateway's own knobs (variants turn them like any component's).
GATEWAY_KNOBS = (reranking.RerankDepth(),)
