"""GET /v1/recommendations: validate, run the pipeline, answer with timings, log the list."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.gateway.request_run import RequestRun
from services.gateway.request_state import RequestState
from services.gateway.response import RecommendationResponse, response_body, served_record
from services.gateway.rollouts.gateway_rollouts import GatewayRollouts
from services.gateway.rollouts.split import Decision
from services.gateway.runner import Runner
from services.gateway.variants import VariantRegistry
from shared.frame import ID_PATTERN
from shared.platform.fast_routes import FastRequest, FastResponse, FastRoute, RequestError

log = logging.getLogger(__name__)
PATH = "/v1/recommendations"


class RecommendationQuery(BaseModel):
    """Query parameters; any other parameter is a 422 (``extra_forbidden``) naming it."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=ID_PATTERN, description="letters, digits, _ . : - (1-64)")
    k: int = Field(default=20, ge=1, le=100, description="list length")
    explain: bool = Field(default=False, description="per-item trace of every stage")
    variant: str = Field(
        default="production", pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="run under this declared variant (default: production, or the arm a "
        "rollout assigns; a named variant takes no part in rollouts)",
    )  # fmt: skip


def parse_query(req: FastRequest) -> RecommendationQuery:
    """The checked query (a 422 in FastAPI's shape naming the parameter)."""
    try:
        return RecommendationQuery.model_validate(req.query())
    except ValidationError as exc:
        detail = [
            {"loc": ["query", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        raise RequestError(422, detail) from None


@dataclass
class GatewayCore:
    """What the route runs on (built in the app's lifespan, when connections exist)."""

    runner: Runner
    variants: VariantRegistry
    titles: Callable[[list[str]], list[str]]  # catalog titles of served items
    log_served: Callable[[str, dict[str, Any]], None] | None
    last_resort: Callable[[RequestState], None]  # serves something when the runner raised
    rollouts: GatewayRollouts | None = None  # the split, canary re-runs and shadows


def recommendations_route(
    core: Callable[[], GatewayCore | None], variants: Sequence[str] = ()
) -> FastRoute:
    """The route: the runner does the work; this only translates HTTP. ``variants`` (the
    declared names) are listed in the document, as the only values ``variant`` takes."""

    async def handle(http: FastRequest) -> FastResponse:
        q = parse_query(http)
        gw = core()
        if gw is None:
            raise RequestError(503, "the gateway is starting", {"Retry-After": "1"})
        runner, variants = gw.runner, gw.variants
        try:
            variant = variants.get(q.variant)
        except KeyError:
            msg = f"no variant {q.variant!r} (declared: {', '.join(variants.names())})"
            detail = [{"loc": ["query", "variant"], "msg": msg, "type": "value_error"}]
            raise RequestError(422, detail) from None
        started = time.perf_counter()
        rollouts = gw.rollouts if "variant" not in q.model_fields_set else None

        async def run(req: RequestState) -> None:
            try:
                await runner.run(req)
            except Exception:  # last line of defence: a bug must not turn into a 500
                log.exception("pipeline failed")
                req.run = RequestRun(runner.budget, runner.service)
                gw.last_resort(req)

        now = time.time()
        if rollouts is None:
            decision = Decision(variant)
            req = RequestState(http.request_id, q.user_id, q.k, now, variant, q.explain)
            await run(req)
        else:
            decision = rollouts.decide(q.user_id, http.request_id, variant)
            req = RequestState(http.request_id, q.user_id, q.k, now, decision.variant, q.explain)
            req.endpoints = decision.endpoints
            req.experiments = decision.experiments
            req.claimed_slots = frozenset(s for a in decision.rollouts for s in a.slots)
            req = await rollouts.serve(req, decision, run, variant)
        arms = decision.arms
        if req.experiment is not None and req.experiment.arms:
            arms = {**arms, **req.experiment.arms}
        body = response_body(req, gw.titles(req.served.ids if req.served else []), arms)
        if gw.log_served is not None:
            gw.log_served(req.user_id,
                          served_record(req, arms, time.perf_counter() - started))  # fmt: skip
        headers = [(b"server-timing", req.run.server_timing().encode())]
        response = FastResponse(200, orjson.dumps(body), headers=headers)
        if rollouts is not None and arms:
            rollouts.after(req, decision, time.perf_counter() - started)
        return response

    return FastRoute("GET", PATH, handle, _operation(variants), _schemas())


def _schemas() -> dict[str, Any]:
    schema = RecommendationResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "RecommendationResponse": schema}


def _operation(variants: Sequence[str]) -> dict[str, Any]:
    params = []
    query_schema = RecommendationQuery.model_json_schema()
    required = set(query_schema.get("required", []))
    for name, prop in query_schema["properties"].items():
        if name == "variant" and variants:
            prop = {**prop, "enum": list(variants)}
        params.append({"name": name, "in": "query", "required": name in required,
                       "schema": prop, "description": prop.get("description", "")})  # fmt: skip
    return {
        "tags": ["recommendations"],
        "summary": "Recommendations for a user",
        "description": "An unknown user is served by the cold-start path; a failed or late "
        "stage degrades the answer (degraded_reasons say which and what served instead).",
        "parameters": params,
        "responses": {
            "200": {
                "description": "the list",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/RecommendationResponse"}
                    }
                },
                "headers": {
                    "Server-Timing": {
                        "schema": {"type": "string"},
                        "description": "milliseconds per step",
                    }
                },
            },  # fmt: skip
            "422": {"description": "a parameter is invalid (the detail names it)"},
        },
    }
