"""The point-in-time training-set builder: exact values, and no leakage from later events."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.event_semantics import EVENT_SEMANTICS
from shared.events import EVENT_TYPES, Event
from shared.features.affinity import decay_affinity, update_affinity
from shared.features.config import DEFAULT_CONFIG
from shared.features.counters import count_in_window
from shared.features.item import genre_multi_hot
from shared.offline_store import (
    EventLog,
    ParquetEventWriter,
    build_training_set,
    impression_labels,
    read_item_genres,
)
from shared.offline_store.writer import LoggedEvent, to_table

T0 = 1_700_000_000.0
GENRES = {f"i{k}": g for k, g in enumerate([["Action"], ["Comedy", "Drama"], [], ["Horror"]])}


def random_events(rng: np.random.Generator, n: int, start: float = T0) -> list[Event]:
    """Events over ~10 days, with many exact timestamp ties (whole minutes)."""
    out = []
    for k in range(n):
        etype = str(rng.choice(EVENT_TYPES))
        value = float(rng.integers(1, 6)) if etype == "rate" else None
        out.append(
            Event(
                event_id=f"e{start:.0f}-{k}",
                user_id=f"u{rng.integers(0, 4)}",
                item_id=f"i{rng.integers(0, 5)}",  # i4 has no genres entry
                type=etype,
                value=value,
                timestamp=start + 60.0 * float(rng.integers(0, 14_400)),
            )
        )
    return out


def as_table(events: list[Event]) -> pa.Table:
    """Events as an offline-log table."""
    return to_table([LoggedEvent(e) for e in events])


def brute_force(events: list[Event], user: str, item: str, now: float) -> dict[str, object]:
    """Features from first principles: replay the events strictly before ``now`` one by one."""
    cfg = DEFAULT_CONFIG
    # Ties within a second in item order: the history rule online and offline.
    before = sorted(
        (e for e in events if e.timestamp < now), key=lambda e: (e.timestamp, e.item_id)
    )
    mine = [e for e in before if e.user_id == user and EVENT_SEMANTICS[e.type].interaction]
    raw, ref = None, None
    for e in mine:
        raw, ref = update_affinity(
            raw, ref, e.timestamp, genre_multi_hot(GENRES.get(e.item_id, ())),
            EVENT_SEMANTICS[e.type].affinity_weight, cfg.affinity_half_life_s,
        )  # fmt: skip
    aff = np.zeros(19) if raw is None else decay_affinity(raw, now - ref, cfg.affinity_half_life_s)
    on_item = [e for e in before if e.item_id == item]
    inter_ts = np.array([e.timestamp for e in on_item if EVENT_SEMANTICS[e.type].interaction])
    ratings = [e.value for e in mine if e.type == "rate"]
    return {
        "user_n_events": len(mine),
        "user_rating_sum": float(sum(ratings)),
        "user_n_ratings": len(ratings),
        "user_history": list(dict.fromkeys(e.item_id for e in mine))[-cfg.hist_len :],
        "user_genre_affinity": aff,
        "item_count_1h": float(count_in_window(inter_ts, now, 3600, 60)),
        "item_count_7d": float(count_in_window(inter_ts, now, 604_800, 3600)),
        "item_count_total": float(len(inter_ts)),
        "item_like_count": float(
            sum(e.type == "like" or (e.type == "rate" and e.value >= 4) for e in on_item)
        ),
        "item_impressions": float(sum(e.type == "impression" for e in on_item)),
        "item_clicks": float(sum(e.type == "click" for e in on_item)),
    }


def test_every_row_equals_a_replay_of_the_events_strictly_before_it() -> None:
    rng = np.random.default_rng(7)
    events = random_events(rng, 600)
    table = build_training_set(as_table(events), item_genres=GENRES).to_pylist()
    assert len(table) == 600
    for row in table[::7]:
        expected = brute_force(events, row["user_id"], row["item_id"], row["timestamp"])
        for name, want in expected.items():
            got = row[name]
            if name == "user_genre_affinity":
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
            else:
                assert got == pytest.approx(want), (name, row["event_id"])


def test_later_events_never_change_earlier_rows() -> None:
    rng = np.random.default_rng(11)
    early = random_events(rng, 400)
    cut = T0 + 60.0 * 7_000
    labels = as_table(
        [e for e in early if e.timestamp <= cut]
        + [early[0].model_copy(update={"event_id": "at-cut", "timestamp": cut})]
    )
    # The same users and items keep acting afterwards, some at exactly the cut second.
    late = random_events(rng, 400, start=cut)
    late += [
        e.model_copy(update={"event_id": f"tie{k}", "timestamp": cut}) for k, e in enumerate(late)
    ]
    base = build_training_set(as_table(early), labels, item_genres=GENRES)
    more = build_training_set(as_table(early + late), labels, item_genres=GENRES)
    assert base.num_rows == labels.num_rows > 100
    assert base.to_pylist() == more.to_pylist()


def test_a_label_does_not_see_its_own_event_or_one_at_the_same_second() -> None:
    same = [
        Event(event_id=f"e{k}", user_id="u", item_id="i0", type="click", timestamp=T0)
        for k in range(3)
    ]
    rows = build_training_set(as_table(same), item_genres=GENRES).to_pylist()
    assert [r["user_n_events"] for r in rows] == [0, 0, 0]
    assert [r["item_count_total"] for r in rows] == [0.0, 0.0, 0.0]
    assert rows[0]["user_last_event_ts"] is None


def test_builds_from_the_parquet_log_and_counts_a_duplicated_event_once(tmp_path: Path) -> None:
    first = Event(event_id="a", user_id="u", item_id="i1", type="like", timestamp=T0)
    label = Event(event_id="b", user_id="u", item_id="i1", type="click", timestamp=T0 + 10)
    writer = ParquetEventWriter(tmp_path)
    writer.write([LoggedEvent(first, 0, 1), LoggedEvent(label, 0, 2)])
    writer.write([LoggedEvent(first, 0, 1)])  # a sink crash replayed the first event
    assert EventLog(tmp_path).count() == 2
    rows = build_training_set(tmp_path, label_types=["click"]).to_pylist()
    assert len(rows) == 1
    assert rows[0]["item_like_count"] == 1.0
    assert rows[0]["user_n_events"] == 1
    assert rows[0]["user_history"] == ["i1"]
    assert rows[0]["user_genre_affinity"] is None  # no item genres given


def test_labels_for_unknown_users_and_items_get_zero_features() -> None:
    events = as_table(random_events(np.random.default_rng(3), 50))
    labels = pa.table({"user_id": ["nobody"], "item_id": ["nothing"], "timestamp": [T0 + 1e6]})
    row = build_training_set(events, labels).to_pylist()[0]
    assert row["user_n_events"] == 0 and row["user_history"] == []
    assert row["item_count_total"] == 0.0 and row["item_impressions"] == 0.0


def _ev(eid: str, user: str, item: str, kind: str, ts: float, **extra: object) -> Event:
    return Event(event_id=eid, user_id=user, item_id=item, type=kind, timestamp=ts, **extra)  # type: ignore[arg-type]


SHOWN = [
    _ev("s1", "u", "i0", "impression", T0, request_id="r1", position=0),
    _ev("s2", "u", "i1", "impression", T0, request_id="r1", position=1),
    _ev("s3", "v", "i0", "impression", T0 + 5, request_id="r2", position=0),
    _ev("c0", "u", "i0", "click", T0 - 50),  # before the impression: not its outcome
    _ev("c1", "u", "i0", "click", T0 + 30),  # within the horizon: s1 was clicked
    _ev("l1", "u", "i0", "like", T0 + 4000),  # too late for a one-hour horizon
    _ev("c2", "w", "i1", "click", T0 + 10),  # another user's click is not u's outcome
    _ev("c3", "v", "i0", "watch", T0 + 5, value=30.0),  # at the very instant counts
]


def test_impression_labels_look_forward_within_the_horizon() -> None:
    rows = impression_labels(as_table(SHOWN), outcomes=["click", "watch", "like"]).to_pylist()
    got = {r["event_id"]: (r["label_click"], r["label_watch"], r["label_like"], r["label_any"])
           for r in rows}  # fmt: skip
    assert got == {"s1": (1, 0, 0, 1), "s2": (0, 0, 0, 0), "s3": (0, 1, 0, 1)}
    assert [r["position"] for r in rows] == [0, 1, 0] and rows[0]["request_id"] == "r1"
    later = impression_labels(as_table(SHOWN), outcomes=["like"], horizon_s=5000)
    assert later.column("label_like").to_pylist() == [1, 0, 0]
    assert impression_labels(as_table(SHOWN), start=T0 + 1).column("event_id").to_pylist() == ["s3"]


def test_an_impression_label_never_leaks_into_its_features() -> None:
    labels = impression_labels(as_table(SHOWN))
    rows = {r["event_id"]: r for r in build_training_set(as_table(SHOWN), labels).to_pylist()}
    s1 = rows["s1"]
    assert s1["label_click"] == 1
    assert s1["item_clicks"] == 1.0  # c0, before; c1 (the label) comes after
    assert s1["user_n_events"] == 1 and s1["user_history"] == ["i0"]
    # s3's label is c3, at the very same instant: not a feature of s3 (strictly before only).
    assert rows["s3"]["item_count_total"] == 1.0 and rows["s3"]["user_n_events"] == 0


def test_command_line_writes_the_training_set(tmp_path: Path) -> None:
    log_dir, out = tmp_path / "events", tmp_path / "out" / "train.parquet"
    ParquetEventWriter(log_dir).write([LoggedEvent(e, 0, k) for k, e in enumerate(SHOWN)])
    genres = tmp_path / "genres.json"
    genres.write_text(json.dumps({"i0": ["Action"], "i1": ["Comedy", "Drama"]}))
    end = datetime.fromtimestamp(T0 + 1, UTC).isoformat()
    argv = ["--events", str(log_dir), "--out", str(out), "--labels", "impressions",
            "--item-genres", str(genres), "--end", end]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "shared.offline_store", *argv],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows"] == 2 and summary["labels"] == "impressions"
    written = pq.read_table(out)
    labels = impression_labels(log_dir, end=T0 + 1)
    want = build_training_set(log_dir, labels, item_genres=read_item_genres(genres))
    assert written.to_pylist() == want.to_pylist()
    assert written.column("user_genre_affinity").to_pylist()[0] is not None
    missing = subprocess.run(
        [sys.executable, "-m", "shared.offline_store", "--events", str(tmp_path / "nope"),
         "--out", str(out)], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert missing.returncode == 1 and "no event log" in missing.stderr
