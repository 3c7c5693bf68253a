"""How a batch reaches the ingest script: one call on a single Redis, one call per slot on a
Redis Cluster (a script may touch the keys of one slot only).

On a cluster every event has two parts, each applied with its own dedupe mark inside its own
slot: the user part (the event's ``{u:<id>}`` keys, mark ``{u:<id>}:ev:<event>``) and the item
part (every item-side key is under ``{i}``: counters, trending, segment popularity; mark
``{i}:ev:<event>``). A batch takes three pipelined round trips:

1. check the user part of every event, one read-only call per user slot: rejections, marks
   already there, and each user's segment (which the item part's popularity needs);
2. apply the item part of the events no user part rejected: one call, which validates them all
   before it writes (it rejects the events whose item-side keys cannot take them);
3. apply the user parts of the events neither step rejected, one call per user slot.

So nothing of an event is written before both of its parts were validated, and a batch that
fails or whose worker dies between two calls leaves each part either applied with its mark or
not at all: the retry skips the parts that have their mark and applies the others, so nothing
is lost or doubled. (A key made wrong-typed by another client between step 1 and step 3 rejects
the user part after its item part was written: the event is dead-lettered with the reason and
its replay applies only the missing part.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from shared.online_store import keys

_APPLIED, _DUPLICATE, _REJECTED = ord("1"), ord("0"), ord("2")
Row = list[object]  # one event as the script takes it (effects.script_rows)
Call = tuple[bytes, str, str, list[Row]]  # routing key, mode, check, the events


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of one batch: events applied now, already applied before, or rejected."""

    applied: int
    duplicates: int
    mask: bytes = b""  # per event of the batch: b"1" applied now, b"0" duplicate, b"2" rejected
    rejected: tuple[str, ...] = ()  # why, per rejected event in batch order (nothing written)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's script rows, and on a single Redis the one argument they travel in."""

    rows: list[Row]
    payload: bytes = b""


def script_source() -> str:
    """The ingest script's Lua source."""
    return resources.files("shared.online_store").joinpath("ingest.lua").read_text()


class NodeIngest:
    """A single Redis: the whole batch in one atomic script call."""

    def __init__(self, client: redis.Redis, header: bytes) -> None:
        self._script = client.register_script(script_source())
        self._header = header

    def prepare(self, rows: list[Row]) -> PreparedBatch:
        """Encode the batch (on the consumer thread, while the last batch is written)."""
        return PreparedBatch(rows, orjson.dumps(rows))

    def apply(self, batch: PreparedBatch) -> ApplyResult:
        """Run the script once."""
        applied, duplicates, mask, reasons, _ = self._script(
            keys=[], args=[self._header, "all", "0", batch.payload]
        )
        rejected = tuple(bytes(r).decode() for r in reasons)
        return ApplyResult(int(applied), int(duplicates), bytes(mask), rejected)


class ClusterIngest:
    """A Redis Cluster: the batch split by slot, each call inside one slot (module docstring)."""

    def __init__(self, client: RedisCluster, header: bytes) -> None:
        self.client = client
        self._source = script_source()
        self._sha = str(client.script_load(self._source))  # on every primary
        self._header = header

    def prepare(self, rows: list[Row]) -> PreparedBatch:
        """Nothing to encode ahead: the calls depend on what step 1 finds."""
        return PreparedBatch(rows)

    def apply(self, batch: PreparedBatch) -> ApplyResult:
        """Steps 1-3 of the module docstring; the mask and reasons as one call would give them."""
        rows = batch.rows
        mask, reasons = bytearray(b"1" * len(rows)), [""] * len(rows)
        groups = _user_groups(rows, mask)
        users_marked, items_marked = bytearray(len(rows)), bytearray(len(rows))
        segments: dict[object, bytes] = {}
        checked = self._calls([self._user_call(rows, g, "1") for g in groups])
        for group, reply in zip(groups, checked, strict=True):
            _merge(group, reply, mask, reasons, users_marked)
            pairs = reply[4]
            segments.update(zip((bytes(u).decode() for u in pairs[::2]), pairs[1::2], strict=True))
        live = [k for k in range(len(rows)) if mask[k] == _APPLIED]
        if live:
            item_rows = [[*rows[k], segments[rows[k][1]].decode()] for k in live]
            (reply,) = self._calls([(keys.TRENDING, "item", "0", item_rows)])
            _merge(live, reply, mask, reasons, items_marked)
        groups = [[k for k in g if mask[k] == _APPLIED and not users_marked[k]] for g in groups]
        groups = [g for g in groups if g]
        applied = self._calls([self._user_call(rows, g, "0") for g in groups])
        for group, reply in zip(groups, applied, strict=True):
            _merge(group, reply, mask, reasons, users_marked)
        for k in range(len(rows)):
            if mask[k] == _APPLIED and users_marked[k] and items_marked[k]:
                mask[k] = _DUPLICATE  # both parts had their marks: applied before
        rejected = tuple(reasons[k] for k in range(len(rows)) if mask[k] == _REJECTED)
        return ApplyResult(mask.count(_APPLIED), mask.count(_DUPLICATE), bytes(mask), rejected)

    @staticmethod
    def _user_call(
        rows: list[Row], group: list[int], check: str
    ) -> tuple[bytes, str, str, list[Row]]:
        return keys.user_hash(str(rows[group[0]][1])), "user", check, [rows[k] for k in group]

    def _calls(self, calls: Sequence[Call]) -> list[Any]:
        """One pipelined round trip (a pipeline per node); a node that lost the script (a
        restart, a failover) gets it again and only its calls are repeated."""
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(2):
            pipe = self.client.pipeline()  # type: ignore[no-untyped-call]
            for j in todo:
                route, mode, check, rows = calls[j]
                args = (self._header, mode, check, orjson.dumps(rows))
                # The node named here: left to find the keys itself, redis-py asks the server
                # (COMMAND GETKEYS, a round trip per EVALSHA: 60 us of CPU per event measured).
                # A slot that moved since is retried by the pipeline, routed by its key.
                node = self.client.get_node_from_key(route)  # type: ignore[no-untyped-call]
                pipe.execute_command("EVALSHA", self._sha, 1, route, *args, target_nodes=node)
            for j, reply in zip(todo, pipe.execute(raise_on_error=False), strict=True):
                replies[j] = reply
            todo = [j for j in todo if isinstance(replies[j], NoScriptError)]
            if not todo:
                break
            self._sha = str(self.client.script_load(self._source))
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies


def _user_groups(rows: list[Row], mask: bytearray) -> list[list[int]]:
    """Positions of the events by the slot of their user (a later copy of an event id in the
    batch is a duplicate, as one call would find it)."""
    seen: set[object] = set()
    slot_of: dict[object, int] = {}
    groups: dict[int, list[int]] = {}
    for k, row in enumerate(rows):
        if row[0] in seen:
            mask[k] = _DUPLICATE
            continue
        seen.add(row[0])
        user = row[1]
        slot = slot_of.get(user)
        if slot is None:
            slot = slot_of[user] = key_slot(keys.user_hash(str(user)))
        groups.setdefault(slot, []).append(k)
    return list(groups.values())


def _merge(
    positions: list[int], reply: Any, mask: bytearray, reasons: list[str], marked: bytearray
) -> None:
    """Fold one call's per-event answer into the batch's: rejections (with their reasons) and
    events whose mark this part already had."""
    why = iter(bytes(r).decode() for r in reply[3])
    for k, flag in zip(positions, bytes(reply[2]), strict=True):
        if flag == _REJECTED:
            mask[k], reasons[k] = _REJECTED, next(why)
        elif flag == _DUPLICATE:
            marked[k] = 1
