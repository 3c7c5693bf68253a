"""A stage: its components as data, one ``run``, and the wire derived from its declarations.

A stage (candidate generation, filtering, ranking, re-ranking) takes the request's context
and a frame holding the columns its components need, and returns a frame of the columns they
provide (row-aligned with its input, or a new list of items) plus a small typed ``info``. The
gateway calls ``run`` directly in its in-process mode; a stage service exposes the same
object at ``POST <path>`` through :func:`stage_route`. The body of that call is derived from
the declarations, not written per stage: the frame carries exactly the stage's ``needs``,
the answer exactly its ``provides``, each column checked against the catalog
(``shared.pipeline.columns``). MessagePack (``application/x-msgpack``) is the gateway's
encoding; JSON is accepted and answered for ``curl``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from shared.frame import ID_PATTERN, MAX_ITEMS, Frame, FrameCodec, JsonFrame, WireError, WireFrame
from shared.pipeline.columns import column
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import KnobError
from shared.platform.fast_routes import (
    JSON,
    MSGPACK,
    FastRequest,
    FastResponse,
    FastRoute,
    RequestError,
    invalid,
)

I = TypeVar("I")  # noqa: E741 (the info type)
F = TypeVar("F")


class Refused(Exception):
    """A stage cannot serve this request as asked (``status`` 422, or 503 while loading)."""

    def __init__(
        self, status: int, loc: tuple[str, ...], reason: str, retry_after_s: float = 0.0
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.loc = loc
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass
class StageResult(Generic[I]):
    """What a stage returns: new columns (aligned with the input, or a new list) and info."""

    frame: Frame
    info: I


class Stage(Protocol[I]):
    """A stage the runner can call in-process, or a service can expose over HTTP."""

    name: str
    path: str  # its route on a stage service, e.g. /v1/filter
    aligned: bool  # True: the result's rows are the input's rows
    info_type: type[I]

    def needs(self) -> tuple[str, ...]:
        """Frame columns the stage reads (the union of its components' needs)."""
        ...

    def provides(self) -> tuple[str, ...]:
        """Frame columns the stage returns."""
        ...

    async def run(self, ctx: RequestContext, frame: Frame) -> StageResult[I]:
        """The stage's work on one request."""
        ...


class StageRequest(msgspec.Struct, Generic[F]):
    """The body of a stage call."""

    context: RequestContext
    frame: F


class StageReply(msgspec.Struct, Generic[F, I]):
    """The answer of a stage call."""

    frame: F
    info: I


_LOC = re.compile(r"\$((?:\.[A-Za-z_0-9]+|\[\d+\]|\[\.\.\.\])*)")


def _loc(exc: msgspec.ValidationError) -> tuple[tuple[str | int, ...], str]:
    """msgspec's ``... - at `$.context.user.age``` as a loc tuple and a message."""
    text = str(exc)
    msg, _, where = text.rpartition(" - at `")
    found = _LOC.match(where.rstrip("`")) if msg else None
    if not found:
        return (), text
    parts = re.findall(r"\.([A-Za-z_0-9]+)|\[(\d+)\]", found.group(1))
    return tuple(int(i) if i else k for k, i in parts), msg


class StageCodec(Generic[I]):
    """Encodes and checks the calls of one stage, from its declared needs and provides."""

    def __init__(self, stage: Stage[I]) -> None:
        self.stage = stage
        self.needs = stage.needs()
        self.inputs = FrameCodec({n: column(n) for n in self.needs})
        self.outputs = FrameCodec({n: column(n) for n in stage.provides()})
        self._req_bin = msgspec.msgpack.Decoder(StageRequest[WireFrame])
        self._req_json = msgspec.json.Decoder(StageRequest[JsonFrame])
        self._rep_bin = msgspec.msgpack.Decoder(StageReply[WireFrame, stage.info_type])  # type: ignore[name-defined]
        self._rep_json = msgspec.json.Decoder(StageReply[JsonFrame, stage.info_type])  # type: ignore[name-defined]
        self._bin = msgspec.msgpack.Encoder()
        self._json = msgspec.json.Encoder()

    # ---- the stage service's side ------------------------------------------------------
    def decode_request(self, body: bytes, binary: bool) -> tuple[RequestContext, Frame]:
        """Context and frame of a request body (WireError naming the field when invalid)."""
        try:
            if binary:
                msg = self._req_bin.decode(body)
                return msg.context, self.inputs.from_wire(msg.frame, self.needs)
            jmsg = self._req_json.decode(body)
            return jmsg.context, self.inputs.from_json(jmsg.frame, self.needs)
        except msgspec.ValidationError as exc:
            loc, text = _loc(exc)
            raise WireError(loc, text) from None
        except msgspec.DecodeError as exc:
            kind = "MessagePack" if binary else "JSON"
            raise WireError((), f"not a valid {kind} body: {exc}") from None

    def encode_reply(self, result: StageResult[I], binary: bool) -> bytes:
        """The answer body."""
        ids = None if self.stage.aligned else result.frame.ids
        if binary:
            wire: Any = self.outputs.to_wire(result.frame)
        else:
            wire = self.outputs.to_json(result.frame)
        wire.ids = ids
        return (self._bin if binary else self._json).encode(StageReply(wire, result.info))

    # ---- the gateway's side ------------------------------------------------------------
    def encode_request(self, ctx: RequestContext, frame: Frame) -> bytes:
        """A MessagePack request carrying the columns the stage needs."""
        wire = self.inputs.to_wire(frame.select(self.needs))
        return self._bin.encode(StageRequest(ctx, wire))

    def decode_reply(self, body: bytes, content_type: str, ids: list[str]) -> StageResult[I]:
        """The answer of a call whose request frame had ``ids`` (checked like a request)."""
        try:
            if content_type == MSGPACK:
                reply = self._rep_bin.decode(body)
                reply.frame.ids = self._reply_ids(reply.frame.ids, ids)
                frame, info = self.outputs.from_wire(reply.frame), reply.info
            else:
                jreply = self._rep_json.decode(body)
                jreply.frame.ids = self._reply_ids(jreply.frame.ids, ids)
                frame, info = self.outputs.from_json(jreply.frame), jreply.info
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise WireError(("reply",), str(exc)) from None
        if self.stage.aligned and len(frame) != len(ids):
            raise WireError(("reply", "frame"), f"{len(frame)} rows for {len(ids)} items")
        return StageResult(frame, info)

    def _reply_ids(self, got: list[str] | None, sent: list[str]) -> list[str]:
        """An aligned reply's rows are the request's items; a new list carries its own ids."""
        if got is not None:
            return got
        if not self.stage.aligned:
            raise WireError(("reply", "frame", "ids"), "missing")
        return sent


def stage_route(stage: Stage[Any]) -> FastRoute:
    """``POST stage.path``: decode (MessagePack or JSON), run, answer in the same encoding."""
    codec = StageCodec(stage)

    async def handle(req: FastRequest) -> FastResponse:
        ctype = req.content_type
        if ctype not in (MSGPACK, JSON, ""):
            raise RequestError(415, f"send {MSGPACK} or {JSON}, not {ctype}")
        binary = ctype == MSGPACK
        try:
            ctx, frame = codec.decode_request(req.body, binary)
        except WireError as exc:
            raise invalid(("body", *exc.loc), exc.msg) from None
        try:
            result = await stage.run(ctx, frame)
        except KnobError as exc:  # a variant's knob that does not fit this stage's components
            raise invalid(("body", "context", *exc.loc), exc.msg) from None
        except Refused as exc:
            if exc.status == 422:
                raise invalid(("body", *exc.loc), exc.reason) from None
            headers = {"Retry-After": f"{max(1, round(exc.retry_after_s))}"}
            raise RequestError(exc.status, exc.reason, headers) from None
        return FastResponse(200, codec.encode_reply(result, binary), MSGPACK if binary else JSON)

    return FastRoute("POST", stage.path, handle, _operation(stage), _schemas(stage))


def _schemas(stage: Stage[Any]) -> dict[str, Any]:
    (req, _), comps = msgspec.json.schema_components(
        [StageRequest[JsonFrame], StageReply[JsonFrame, stage.info_type]],  # type: ignore[name-defined]
        ref_template="#/components/schemas/{name}",
    )
    comps = dict(comps)
    name = req["$ref"].rsplit("/", 1)[-1]
    request = comps[name] = {**comps[name], "properties": dict(comps[name]["properties"])}
    # A request's frame must carry its ids (a reply's may leave them out: aligned stages).
    ids = {
        "type": "array",
        "items": {"type": "string", "pattern": ID_PATTERN},
        "maxItems": MAX_ITEMS,
    }
    request["properties"]["frame"] = {
        "allOf": [request["properties"]["frame"]],
        "required": ["ids"],
        "properties": {"ids": ids},
    }
    return comps


def _operation(stage: Stage[Any]) -> dict[str, Any]:
    (req, rep), _ = msgspec.json.schema_components(
        [StageRequest[JsonFrame], StageReply[JsonFrame, stage.info_type]],  # type: ignore[name-defined]
        ref_template="#/components/schemas/{name}",
    )
    body = {
        "content": {
            JSON: {"schema": req},
            MSGPACK: {"schema": {"type": "string", "format": "binary"}},
        }
    }
    needs = ", ".join(stage.needs()) or "none"
    return {
        "tags": ["stage"],
        "summary": f"the {stage.name} stage",
        "description": f"Frame columns it needs: {needs}. Columns it answers: "
        f"{', '.join(stage.provides())}. Same fields in MessagePack (buffers per column).",
        "requestBody": {"required": True, **body},
        "responses": {
            "200": {"description": "the stage's columns", "content": {JSON: {"schema": rep}}},
            "422": {"description": "a field of the body is invalid (the detail names it)"},
            "503": {"description": "the model the variant names is loading; retry"},
        },
    }


def stage_components(stage: Any) -> Sequence[Any]:
    """The components a stage runs (for the wiring check)."""
    return list(getattr(stage, "components", ()))
