"""FilteringStage: the filters in order, each on the survivors of the ones before it."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

from shared.frame import Frame
from shared.pipeline.components import CandidateFilter
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import KnobTable
from shared.pipeline.stage import StageResult


class FilterInfo(msgspec.Struct):
    """The filters that ran, in order: ``removed_by`` indexes this list."""

    applied: list[str]


class FilteringStage:
    """Cheapest filters first, so the costlier ones see fewer items.

    Answers one column, ``removed_by``: for every input row the index (into
    ``info.applied``) of the filter that removed it, or -1 when every filter kept it. The
    removal reason of a row is that filter's name.
    """

    name = "filtering"
    path = "/v1/filter"
    aligned = True
    info_type = FilterInfo

    def __init__(self, filters: Sequence[CandidateFilter]) -> None:
        self.components = list(filters)
        self.knobs = KnobTable(self.components)
        self.names = [f.name for f in self.components]

    def needs(self) -> tuple[str, ...]:
        """Every column some filter reads."""
        return tuple(dict.fromkeys(c for f in self.components for c in f.needs))

    def provides(self) -> tuple[str, ...]:
        """The one column it answers."""
        return ("removed_by",)

    async def run(self, ctx: RequestContext, frame: Frame) -> StageResult[FilterInfo]:
        """``removed_by`` of every row."""
        return StageResult(Frame(frame.ids, {"removed_by": self.apply(ctx, frame)}),
                           FilterInfo(self.names))  # fmt: skip

    def apply(self, ctx: RequestContext, frame: Frame) -> np.ndarray:
        """[n] int64: the index of the filter that removed each row, -1 for survivors."""
        knobs = self.knobs.resolve(ctx.variant)
        removed_by = np.full(len(frame), -1, dtype=np.int64)
        rows = np.arange(len(frame), dtype=np.int64)
        current = frame
        for i, f in enumerate(self.components):
            if not len(rows):
                break
            keep = np.asarray(f.keep(current, ctx, knobs[f.name]), dtype=bool)
            if not keep.all():
                removed_by[rows[~keep]] = i
                survivors = np.flatnonzero(keep)
                rows, current = rows[survivors], current.take(survivors)
        return removed_by
