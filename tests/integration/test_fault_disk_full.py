"""Fault matrix: the offline sink's disk fills up → it stops, says so, resumes once space is back.

The disk is a real one: a small tmpfs mounted for the test (the suite runs as root on these
machines, as `make bootstrap`'s apt-get does), filled with a plain file and emptied again.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.events import Event
from shared.offline_store import EventLog
from shared.offline_store.writer import DiskFullError, LoggedEvent, ParquetEventWriter
from shared.stream.topic_keeper import ensure_topics
from tests.conftest import ServiceStarter
from tests.integration.test_events_api import make_events
from tests.integration.test_offline_sink import produce, retry_env, wait_for
from tests.utils.metrics import scrape as metrics

pytestmark = pytest.mark.integration

DISK_MB = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of DISK_MB MiB (tmpfs), unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Write a filler file so that about ``leave_bytes`` stay free; returns it."""
    filler = disk / "filler"
    with filler.open("ab") as f:
        chunk = b"\0" * 2**16
        while ParquetEventWriter(disk).free_bytes() > leave_bytes + len(chunk):
            f.write(chunk)
            f.flush()
        rest = ParquetEventWriter(disk).free_bytes() - leave_bytes
        if rest > 0:
            try:
                f.write(b"\0" * rest)
                f.flush()
            except OSError:  # the last page may not fit: the disk is as full as it gets
                pass
    return filler


def logged(raw: list[dict[str, object]]) -> list[LoggedEvent]:
    """Events as the sink hands them to the writer."""
    return [LoggedEvent(Event.model_validate(e), 0, k) for k, e in enumerate(raw)]


def test_a_write_that_runs_out_of_space_leaves_nothing_behind(small_disk: Path) -> None:
    """ENOSPC mid-write (no reserve set): DiskFullError, no temporary file keeps the disk full,
    and the same batch is written once space is back."""
    log_dir = small_disk / "events"
    writer = ParquetEventWriter(log_dir)
    rows = logged(make_events(3000))
    filler = fill(small_disk, leave_bytes=4096)
    with pytest.raises(DiskFullError, match="disk full"):
        writer.write(rows)
    assert not list(log_dir.rglob("*.tmp")), "a failed write left its temporary file"
    filler.unlink()
    (written,) = writer.write(rows)
    assert written.is_file() and EventLog(log_dir).count() == 3000


def test_below_the_reserve_nothing_is_written_and_the_reason_is_given(small_disk: Path) -> None:
    writer = ParquetEventWriter(small_disk / "events", min_free_bytes=3 * 2**20)
    fill(small_disk, leave_bytes=2 * 2**20)
    with pytest.raises(DiskFullError, match=r"MiB free under .*3\.0 MiB kept in reserve"):
        writer.write(logged(make_events(5)))
    assert not (small_disk / "events").exists() or not list((small_disk / "events").rglob("*"))


def test_the_sink_stops_on_a_full_disk_says_so_and_resumes_when_space_is_back(
    start_service: ServiceStarter, kafka_bootstrap: str, unique_topic: str, small_disk: Path
) -> None:
    ensure_topics(kafka_bootstrap, {unique_topic: 1, f"{unique_topic}.dlq": 1})
    log_dir = small_disk / "events"
    env = retry_env(kafka_bootstrap, unique_topic, log_dir, min_free_mb="2", stuck_after="3")
    sink = start_service("offline_sink", env)
    first = make_events(100)
    produce(kafka_bootstrap, unique_topic, first)
    log = EventLog(log_dir)
    wait_for(lambda: log.count() == 100, timeout_s=30)

    filler = fill(small_disk, leave_bytes=2**20)  # 1 MiB free, under the 2 MiB reserve
    second = make_events(100)
    produce(kafka_bootstrap, unique_topic, second)

    def readiness() -> httpx.Response:
        return httpx.get(f"{sink}/readyz", timeout=5)

    wait_for(lambda: readiness().status_code == 503, timeout_s=20)
    wait_for(lambda: "stuck" in readiness().json()["checks"]["consumer"]["reason"], timeout_s=20)
    checks = readiness().json()["checks"]
    assert checks["disk"]["reason"].startswith("disk full: 1.0 MiB free")
    assert "DiskFullError" in checks["consumer"]["reason"]
    time.sleep(1.0)  # a few more retries: none of them writes or commits anything
    assert log.count() == 100
    group = env["CASCADE_OFFLINE_SINK_GROUP_ID"]
    m = metrics(sink)
    assert m["cascade_offline_sink_consumer_lag{}"] == 100  # the events wait in the broker
    assert m["cascade_offline_sink_disk_free_bytes{}"] < 2 * 2**20
    assert m.get(f"cascade_consumer_dead_letters_total{{consumer={group},reason=handler}}", 0) == 0

    filler.unlink()
    wait_for(lambda: log.count() == 200, timeout_s=30)
    con = log.connect()
    ids = {r[0] for r in con.execute("SELECT event_id FROM events").fetchall()}
    assert ids == {e["event_id"] for e in first + second}
    wait_for(lambda: readiness().status_code == 200, timeout_s=20)
    assert not list(log_dir.rglob("*.tmp"))
