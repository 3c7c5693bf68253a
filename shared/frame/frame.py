"""Frame: the candidates of one request as item ids plus named, row-aligned columns.

Every stage receives a frame and adds columns to it (scores, heads, adjustments) or selects rows
of it (filters keep rows, re-ranking orders them). Features travel with each candidate, so a
stage needing one more attribute asks for one more column by name; no shared input type grows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Literal, Union

import numpy as np

ColumnValues = Union[np.ndarray, list[str]]  # noqa: UP007 (a runtime alias, not an annotation)
Dtype = Literal["float32", "float64", "int64", "bool", "str"]


@dataclass(frozen=True)
class Column:
    """A column's declaration: its name, element type, width and the values it may hold.

    ``width`` 0 means one value per item ([n]); a positive width means [n, width]. Float
    columns are finite unless ``nan_ok`` (NaN then means "unknown"); ``low``/``high`` bound the
    values (checked on every decode, vectorised). ``str`` columns hold one string per item.
    """

    name: str
    dtype: Dtype
    width: int = 0
    nan_ok: bool = False
    low: float | None = None
    high: float | None = None
    doc: str = ""

    def empty(self, n: int = 0) -> ColumnValues:
        """A column of ``n`` zero (or empty-string) values."""
        if self.dtype == "str":
            return [""] * n
        shape = (n, self.width) if self.width else (n,)
        return np.zeros(shape, dtype=self.dtype)


class FrameError(ValueError):
    """A frame that breaks its own rules: a column of the wrong length, a missing column."""


def _picker(rows: list[int]) -> Callable[[list[str]], list[str]]:
    """A function taking ``rows`` of a list (itemgetter: one C call instead of a loop)."""
    if len(rows) > 1:
        get = itemgetter(*rows)
        return lambda values: list(get(values))
    return lambda values: [values[r] for r in rows]


class Frame:
    """Item ids and columns of equal length; ``take`` keeps rows, ``set`` adds a column."""

    __slots__ = ("ids", "columns")

    def __init__(self, ids: list[str], columns: Mapping[str, ColumnValues] | None = None) -> None:
        self.ids = ids
        self.columns: dict[str, ColumnValues] = {}
        for name, values in (columns or {}).items():
            self.set(name, values)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __getitem__(self, name: str) -> np.ndarray:
        """A numeric column (``text`` gives string columns)."""
        values = self._get(name)
        if isinstance(values, list):
            raise FrameError(f"column {name!r} holds strings: use Frame.text")
        return values

    def text(self, name: str) -> list[str]:
        """A string column."""
        values = self._get(name)
        if not isinstance(values, list):
            raise FrameError(f"column {name!r} is numeric, not strings")
        return values

    def _get(self, name: str) -> ColumnValues:
        try:
            return self.columns[name]
        except KeyError:
            raise FrameError(f"the frame has no column {name!r} (has {sorted(self)})") from None

    def set(self, name: str, values: ColumnValues) -> None:
        """Add or replace a column (its length must equal the number of items)."""
        if len(values) != len(self.ids):
            raise FrameError(f"column {name!r} has {len(values)} rows, the frame {len(self.ids)}")
        self.columns[name] = values

    def take(self, rows: np.ndarray) -> Frame:
        """The items at ``rows`` (int indices), in that order, with every column."""
        r = np.asarray(rows, dtype=np.int64)
        pick = _picker(r.tolist())
        picked = Frame(pick(self.ids))
        for name, values in self.columns.items():
            picked.columns[name] = pick(values) if isinstance(values, list) else values[r]
        return picked

    def select(self, names: Iterable[str]) -> Frame:
        """The same items with only the columns ``names`` (each must exist)."""
        out = Frame(self.ids)
        for name in names:
            out.columns[name] = self._get(name)
        return out

    def update(self, other: Frame) -> None:
        """Add ``other``'s columns (same items, same order) to this frame."""
        if other.ids is not self.ids and other.ids != self.ids:
            raise FrameError("cannot merge columns of a frame over other items")
        for name, values in other.columns.items():
            self.set(name, values)
