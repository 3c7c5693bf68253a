"""The frame on the wire: raw column buffers in MessagePack, or plain lists in JSON.

One codec for every stage: which columns a stage body carries comes from the components'
declarations (``needs`` / ``provides``), and each column's ``Column`` says how to check it. The
binary form sends each numeric column as its little-endian buffer (``np.frombuffer`` on the
way in: no per-item Python work); JSON is for ``curl`` and debugging. Either way a body is
checked before a stage sees it: lengths agree, dtypes match, floats are finite (NaN only where
a column allows "unknown"), values within the column's bounds, at most ``max_items`` items,
ids match ``ID_PATTERN``. A failure raises ``WireError`` naming the field (a 422).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np

from shared.frame.frame import Column, ColumnValues, Frame

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
MAX_ITEMS = 5000
MAX_TEXT = 1000  # characters per string cell
_ONE_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_IDS = re.compile(r"(?:[A-Za-z0-9_.:\-]{1,64}\n)*")  # ID_PATTERN, for "\n".join(ids) + "\n"
# numpy kinds a JSON list may decode to, per column dtype (no strings, no silent truncation)
_JSON_KINDS = {"float32": "fiu", "float64": "fiu", "int64": "iu", "bool": "b"}


class WireError(ValueError):
    """A body that cannot be a valid frame or message; ``loc`` is the path to the bad field."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc = loc
        self.msg = msg


class WireColumn(msgspec.Struct, array_like=True):
    """One column in MessagePack: numpy dtype name, width (0: 1-D) and its buffer (or strings)."""

    dtype: str
    width: int
    data: bytes | list[str]


class WireFrame(msgspec.Struct):
    """A frame in MessagePack (``ids`` None: rows aligned with a frame the reader has)."""

    ids: list[str] | None = None
    columns: dict[str, WireColumn] = {}


class JsonFrame(msgspec.Struct):
    """A frame in JSON: one list per column (nested lists for 2-D; null for NaN)."""

    ids: list[str] | None = None
    columns: dict[str, list[Any]] = {}


def check_ids(
    ids: list[str] | None, loc: tuple[str | int, ...], max_items: int = MAX_ITEMS
) -> list[str]:
    """At most ``max_items`` ids, each matching ``ID_PATTERN`` (one regex pass over all)."""
    if ids is None:
        raise WireError(loc, "missing")
    if len(ids) > max_items:
        raise WireError(loc, f"{len(ids)} items, at most {max_items} allowed")
    joined = "\n".join(ids) + "\n"
    # one pass for all ids; the count rules out an id that itself holds a newline
    if ids and (_IDS.fullmatch(joined) is None or joined.count("\n") != len(ids)):
        bad = next(i for i in ids if _ONE_ID.fullmatch(i) is None)
        raise WireError(loc, f"item id {bad[:80]!r} does not match {ID_PATTERN}")
    return ids


def _check_values(col: Column, a: np.ndarray, loc: tuple[str | int, ...]) -> None:
    if col.dtype in ("float32", "float64"):
        bad = np.isinf(a) if col.nan_ok else ~np.isfinite(a)
        if bad.any():
            what = "infinite" if col.nan_ok else "NaN or infinite"
            raise WireError(loc, f"{int(bad.sum())} {what} values")
    if col.low is not None and (a < col.low).any():
        raise WireError(loc, f"values below {col.low:g}")
    if col.high is not None and (a > col.high).any():
        raise WireError(loc, f"values above {col.high:g}")


def _check_text(values: list[str], loc: tuple[str | int, ...]) -> None:
    if values and max(map(len, values)) > MAX_TEXT:
        raise WireError(loc, f"a string longer than {MAX_TEXT} characters")


class FrameCodec:
    """Encodes and checks frames whose columns are declared in ``schema`` (name -> Column)."""

    def __init__(self, schema: Mapping[str, Column], max_items: int = MAX_ITEMS) -> None:
        self.schema = {k: v for k, v in schema.items() if not k.endswith("*")}
        self.families = {k[:-1]: v for k, v in schema.items() if k.endswith("*")}
        self.max_items = max_items

    def _column(self, name: str, loc: tuple[str | int, ...]) -> Column:
        col = self.schema.get(name)
        if col is None:
            col = next((c for p, c in self.families.items() if name.startswith(p)), None)
        if col is None:
            known = sorted([*self.schema, *(f"{p}*" for p in self.families)])
            raise WireError(loc, f"unknown column {name!r} (known: {known})")
        return col

    # ---- MessagePack -------------------------------------------------------------------
    def to_wire(self, frame: Frame) -> WireFrame:
        """The frame's columns as raw buffers (numeric) or string lists."""
        cols = {}
        for name, values in frame.columns.items():
            col = self._column(name, ("frame", "columns", name))
            if isinstance(values, list):
                cols[name] = WireColumn("str", 0, values)
            else:
                a = np.ascontiguousarray(values, dtype=col.dtype)
                cols[name] = WireColumn(col.dtype, col.width, a.data.cast("B").tobytes())
        return WireFrame(frame.ids, cols)

    def from_wire(
        self, wire: WireFrame, required: tuple[str, ...] = (), loc: tuple[str | int, ...] = ()
    ) -> Frame:
        """The frame of a MessagePack body, every column checked against its declaration."""
        return self._decode(wire.ids, wire.columns, self._decode_binary, required, loc)

    def _decode(
        self,
        ids: list[str] | None,
        columns: Mapping[str, Any],
        decode: Callable[[Column, Any, int, tuple[str | int, ...]], ColumnValues],
        required: tuple[str, ...],
        loc: tuple[str | int, ...],
    ) -> Frame:
        floc = (*loc, "frame")
        checked = check_ids(ids, (*floc, "ids"), self.max_items)
        frame = Frame(checked)
        for name, values in columns.items():
            cloc = (*floc, "columns", name)
            frame.columns[name] = decode(self._column(name, cloc), values, len(checked), cloc)
        self._require(frame, required, floc)
        return frame

    def _decode_binary(
        self, col: Column, wc: WireColumn, n: int, loc: tuple[str | int, ...]
    ) -> ColumnValues:
        if col.dtype == "str":
            if not isinstance(wc.data, list) or len(wc.data) != n:
                raise WireError(loc, f"expected {n} strings")
            _check_text(wc.data, loc)
            return wc.data
        if wc.dtype != col.dtype or wc.width != col.width or not isinstance(wc.data, bytes):
            want = f"{col.dtype}[{col.width}]" if col.width else col.dtype
            raise WireError(loc, f"expected {want} buffer, got {wc.dtype}[{wc.width}]")
        dtype = np.dtype(col.dtype)
        expected = n * max(col.width, 1) * dtype.itemsize
        if len(wc.data) != expected:
            raise WireError(loc, f"{len(wc.data)} bytes, {expected} expected for {n} items")
        a = np.frombuffer(wc.data, dtype=dtype)
        if col.width:
            a = a.reshape(n, col.width)
        _check_values(col, a, loc)
        return a

    # ---- JSON ---------------------------------------------------------------------------
    def to_json(self, frame: Frame) -> JsonFrame:
        """The frame with plain lists (NaN as null), for JSON bodies."""
        cols: dict[str, list[Any]] = {}
        for name, values in frame.columns.items():
            if isinstance(values, list):
                cols[name] = values
            else:
                a = np.asarray(values)
                if a.dtype.kind == "f":  # JSON has no NaN: unknown is null
                    cells = a.astype(object)
                    cells[np.isnan(a)] = None
                    cols[name] = cells.tolist()
                else:
                    cols[name] = a.tolist()
        return JsonFrame(frame.ids, cols)

    def from_json(
        self, wire: JsonFrame, required: tuple[str, ...] = (), loc: tuple[str | int, ...] = ()
    ) -> Frame:
        """The frame of a JSON body (lists converted to typed arrays, then checked)."""
        return self._decode(wire.ids, wire.columns, self._decode_list, required, loc)

    def _decode_list(
        self, col: Column, values: list[Any], n: int, loc: tuple[str | int, ...]
    ) -> ColumnValues:
        if len(values) != n:
            raise WireError(loc, f"{len(values)} values, the frame has {n} items")
        if col.dtype == "str":
            if not all(isinstance(v, str) for v in values):
                raise WireError(loc, "expected strings")
            _check_text(values, loc)
            return values
        if col.nan_ok:
            cells = [np.nan if v is None else v for v in values]
        elif any(v is None for v in values):
            raise WireError(loc, "null (unknown) values are not allowed in this column")
        else:
            cells = values
        try:
            a = np.array(cells)
        except (TypeError, ValueError) as exc:  # ragged nesting
            raise WireError(loc, f"not {col.dtype} values: {exc}") from None
        if n and a.dtype.kind not in _JSON_KINDS[col.dtype]:
            raise WireError(loc, f"expected {col.dtype} values, got {a.dtype.name}")
        shape = (n, col.width) if col.width else (n,)
        if a.shape != shape and not (n == 0 and a.size == 0):
            raise WireError(loc, f"shape {list(a.shape)}, expected {list(shape)}")
        a = a.reshape(shape).astype(col.dtype)
        _check_values(col, a, loc)
        return a

    @staticmethod
    def _require(frame: Frame, required: tuple[str, ...], loc: tuple[str | int, ...]) -> None:
        missing = [c for c in required if c not in frame]
        if missing:
            raise WireError((*loc, "columns"), f"missing columns {missing}")
