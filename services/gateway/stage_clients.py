"""How the runner reaches a stage: in this process, or over HTTP. The steps cannot tell.

Both hand the stage exactly the columns it declares it needs (``frame.select``), so a
component that reads a column it did not declare fails the same way in both modes, and the
in-process pipeline is an honest baseline for the microservice path.
"""

from __future__ import annotations

from typing import Any, Protocol

from shared.frame import Frame
from shared.pipeline.context import RequestContext
from shared.pipeline.stage import Stage, StageCodec, StageResult
from shared.platform.fast_routes import MSGPACK
from shared.platform.http_client import ServiceClient


class StageClient(Protocol):
    """Calls one stage."""

    stage: Stage[Any]

    async def call(self, ctx: RequestContext, frame: Frame) -> StageResult[Any]:
        """The stage's result for this request (raises when the stage fails)."""
        ...


class LocalStage:
    """The stage object in this process: a method call, no encoding."""

    def __init__(self, stage: Stage[Any]) -> None:
        self.stage = stage
        self.needs = stage.needs()

    async def call(self, ctx: RequestContext, frame: Frame) -> StageResult[Any]:
        """Run the stage on the columns it needs."""
        return await self.stage.run(ctx, frame.select(self.needs))


class RemoteStage:
    """The stage behind its service: MessagePack over a pooled keep-alive connection.

    Every call is made under a deadline the caller sets (the runner's per-step budget)."""

    def __init__(self, stage: Stage[Any], client: ServiceClient) -> None:
        self.stage = stage
        self.client = client
        self.codec = StageCodec(stage)

    async def call(self, ctx: RequestContext, frame: Frame) -> StageResult[Any]:
        """POST the context and the needed columns; the decoded, checked answer."""
        body = self.codec.encode_request(ctx, frame)
        ctype, answer = await self.client.request(
            "POST", self.stage.path, body, MSGPACK, timeout_s=0,  # the runner's deadline bounds it
            headers={"X-Request-ID": ctx.request_id},
        )  # fmt: skip
        return self.codec.decode_reply(answer, ctype, frame.ids)
