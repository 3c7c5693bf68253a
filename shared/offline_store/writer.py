"""Durable Parquet appends: a file is visible only once it is complete and on disk."""

from __future__ import annotations

import errno
import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.events import Event
from shared.offline_store.layout import EVENT_FIELDS, EVENT_SCHEMA, day_of, part_name, partition_dir

_EVENT_ATTRS = tuple(name for name in EVENT_FIELDS if not name.startswith("kafka_"))


@dataclass(frozen=True)
class LoggedEvent:
    """An event with where it was read from (Kafka partition and offset, if any)."""

    event: Event
    partition: int | None = None
    offset: int | None = None


class DiskFullError(OSError):
    """The log's disk has less free space than the writer keeps in reserve (or none at all).

    An OSError, so the consumer loop treats it as a dependency failure: the batch is kept
    (nothing committed) and retried until space is back, never dead-lettered.
    """


class ParquetEventWriter:
    """Appends batches of events as new files, one per UTC day present in the batch.

    Each file is written to a hidden temporary name, fsynced, renamed atomically into place and
    the folder fsynced, so after ``write`` returns the events survive a crash or power loss, and
    readers never see a half-written file. A write that fails removes its temporary file: a disk
    that filled up mid-write is not kept full by the attempt (each attempt has a new name).
    Below ``min_free_bytes`` of free space nothing is written (:class:`DiskFullError`), which
    leaves room for the readers' own temporary files and for the rename's metadata.
    """

    def __init__(
        self, root: str | Path, compression: str = "zstd", min_free_bytes: int = 0
    ) -> None:
        self.root = Path(root)
        self.compression = compression
        self.min_free_bytes = min_free_bytes

    def free_bytes(self) -> int:
        """Free space on the log's file system (of its nearest existing folder)."""
        folder = self.root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def check_space(self) -> None:
        """DiskFullError when less than ``min_free_bytes`` is free."""
        free = self.free_bytes()
        if free < self.min_free_bytes:
            raise DiskFullError(
                errno.ENOSPC,
                f"disk full: {free / 2**20:.1f} MiB free under {self.root}, "
                f"{self.min_free_bytes / 2**20:.1f} MiB kept in reserve; "
                "nothing is committed until space is back",
            )

    def write(self, rows: Sequence[LoggedEvent]) -> list[Path]:
        """Write ``rows`` durably; return the published files (none for an empty batch)."""
        if rows:
            self.check_space()
        by_day: dict[str, list[LoggedEvent]] = defaultdict(list)
        for row in rows:
            by_day[day_of(row.event.timestamp)].append(row)
        return [self._write_day(day, day_rows) for day, day_rows in sorted(by_day.items())]

    def _write_day(self, day: str, rows: list[LoggedEvent]) -> Path:
        folder = partition_dir(self.root, day)
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(folder.parent)  # the new day folder's own entry must be durable too
        final = folder / part_name()
        tmp = folder / f".{final.name}.tmp"
        try:
            pq.write_table(to_table(rows), tmp, compression=self.compression)
            _fsync_file(tmp)
            os.replace(tmp, final)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and _is_disk_full(exc):
                why = f"disk full while writing {final}: {exc}"
                raise DiskFullError(errno.ENOSPC, why) from exc
            raise
        _fsync_dir(folder)
        return final


def _is_disk_full(exc: OSError) -> bool:
    """True for ENOSPC / EDQUOT, however the library raised it."""
    # Arrow's errors are OSErrors without errno; their text carries the C library's message.
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def to_table(rows: Sequence[LoggedEvent]) -> pa.Table:
    """Rows as an Arrow table with EVENT_SCHEMA."""
    cols: dict[str, list[Any]] = {name: [] for name in EVENT_FIELDS}
    for row in rows:
        e = row.event
        for name in _EVENT_ATTRS:
            cols[name].append(getattr(e, name))
        cols["kafka_partition"].append(row.partition)
        cols["kafka_offset"].append(row.offset)
    return pa.table(cols, schema=EVENT_SCHEMA)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
