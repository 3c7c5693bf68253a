"""The candidate frame (item ids + named columns) and its wire codec."""

from shared.frame.codec import (
    ID_PATTERN,
    MAX_ITEMS,
    FrameCodec,
    JsonFrame,
    WireColumn,
    WireError,
    WireFrame,
    check_ids,
)
from shared.frame.frame import Column, ColumnValues, Frame, FrameError

__all__ = [
    "ID_PATTERN",
    "MAX_ITEMS",
    "Column",
    "ColumnValues",
    "Frame",
    "FrameCodec",
    "FrameError",
    "JsonFrame",
    "WireColumn",
    "WireError",
    "WireFrame",
    "check_ids",
]
