"""Every column a candidate frame can carry: what the store hydrates and what stages add.

Components name the columns they need and provide; this catalog says what each one is
(dtype, width, bounds), so the wiring check and the wire codec read one declaration. Names
ending in ``*`` are families: ``source_two_tower`` is a ``source_*`` column.
"""

from __future__ import annotations

from shared.frame import Column
from shared.online_store.columns import STORE_COLUMNS

SOURCE = Column("source_*", "float32", nan_ok=True, doc="a source's score (NaN: not found by it)")
REMOVED_BY = Column(
    "removed_by", "int64", low=-1, doc="index of the filter that removed the row (-1: kept)"
)
EASE_SCORE = Column(
    "ease_score", "float32", doc="EASE weights summed over the user's history (a ranker input)"
)
SCORE = Column("score", "float32", doc="the ranker's blended score")
HEAD = Column("head_*", "float32", doc="one ranker head's probability")
ROW = Column("row", "int64", low=0, doc="the served item's row in the re-ranker's input")
FINAL_SCORE = Column("final_score", "float32", doc="score after re-ranking adjustments")
PROPENSITY = Column("propensity", "float32", low=0, high=1, doc="probability of this placement")
EXPLORED = Column("explored", "bool", doc="placed by an exploration slot")
ADJUST = Column("adjust_*", "float32", doc="one re-ranker's score adjustment")

STAGE_COLUMNS = (
    SOURCE,
    EASE_SCORE,
    REMOVED_BY,
    SCORE,
    HEAD,
    ROW,
    FINAL_SCORE,
    PROPENSITY,
    EXPLORED,
    ADJUST,
)
CATALOG: dict[str, Column] = {
    **{c.column.name: c.column for c in STORE_COLUMNS},
    **{c.name: c for c in STAGE_COLUMNS},
}


def column(name: str) -> Column:
    """The declaration of ``name`` (KeyError when the catalog has no such column)."""
    col = CATALOG.get(name)
    if col is not None:
        return col
    for family, c in CATALOG.items():
        if family.endswith("*") and name.startswith(family[:-1]):
            return c
    raise KeyError(name)
