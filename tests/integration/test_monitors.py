"""The monitors end to end, against a real ranking process and the session's real broker:

- drift: a variant served inputs with 30x item counts shows PSI above the alert line on
  the count features in ``/metrics`` and ``GET /v1/monitors``, a steady variant's item
  features and scores stay below it, and a model without a reference serves with
  ``reference_available 0``;
- skew: served features logged to Kafka, recomputed by ``python -m services.monitors.skew``
  from a real Parquet event log at each request's time, agree on every feature except the
  one the test made the online side get wrong (``n_events`` + 5 → ``user_activity``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pyarrow as pa
import pytest

from deploy.local.processes import running
from shared.events import Event
from shared.features.genre_mask import genre_mask
from shared.frame import Frame
from shared.models.bundle import load_bundle
from shared.monitors.features import ITEM_NAMES
from shared.monitors.psi import ALERT
from shared.monitors.reference import REFERENCE_FILE
from shared.offline_store import ParquetEventWriter, build_training_set
from shared.offline_store.writer import LoggedEvent
from shared.pipeline.context import RequestContext, UserContext, VariantSpec
from tests.integration.serving_fixtures import catalog, write_synthetic_bundle
from tests.utils.drift_traffic import request, request_body, write_reference
from tests.utils.servers import service_spec

REPO = Path(__file__).resolve().parents[2]
COUNTS = {"item_count_1h", "item_count_24h", "item_count_7d", "item_count_total"}
ITEMS = catalog(40)
GENRES_OF = {r.item_id: list(r.genres) for r in ITEMS}


@pytest.fixture(scope="module")
def ranking(
    tmp_path_factory: pytest.TempPathFactory, server_dir: Path, kafka_bootstrap: str
) -> Iterator[tuple[str, str, Path]]:
    """(base URL, feature topic, folder) of a ranking process sampling every request, with a
    reference-carrying production model and an older one (no reference) behind ``old``."""
    tmp = tmp_path_factory.mktemp("monitors")
    bundle = write_synthetic_bundle(tmp / "bundle", ITEMS)
    write_reference(load_bundle({"ranker": bundle / "ranker"}, ["ranker"]), bundle / "ranker")
    old = write_synthetic_bundle(tmp / "old", ITEMS, "legacy-1")  # as exported before references
    assert not (old / "ranker" / REFERENCE_FILE).exists()
    topic = f"served_features-{uuid.uuid4().hex[:8]}"
    spec = service_spec("ranking", {
        "CASCADE_MODELS_DIR": str(bundle), "CASCADE_MODEL_ALIAS_DIRS": f"old={old}",
        "CASCADE_MODEL_ALIASES": "production,old", "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CASCADE_RANKING_MONITOR_SAMPLE_EVERY": "1", "CASCADE_RANKING_MONITOR_MIN_REQUESTS": "60",
        "CASCADE_RANKING_FEATURE_LOG_EVERY": "1", "CASCADE_RANKING_FEATURE_LOG_TOPIC": topic,
        "CASCADE_RANKING_FEATURE_LOG_ITEMS": "8",
        "CASCADE_RANKING_SKEW_REPORT": str(tmp / "skew" / "skew.json"),
    }, require_ready=True)  # fmt: skip
    with running(spec, server_dir / "logs"):
        yield spec.url, topic, tmp


def _post(base: str, ctx: RequestContext, frame: Frame) -> None:
    resp = httpx.post(f"{base}/v1/rank", json=request_body(ctx, frame), timeout=10)
    assert resp.status_code == 200, resp.text


def _series(base: str, metric: str) -> dict[tuple[str, str], float]:
    """(variant, feature|head) -> value of ``metric`` in ``/metrics``."""
    out = {}
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith(metric + "{"):
            labels = dict(
                p.split("=", 1) for p in line[len(metric) + 1 : line.index("}")].split(",")
            )
            labels = {k: v.strip('"') for k, v in labels.items()}
            key = (labels["variant"], labels.get("feature") or labels.get("head") or "")
            out[key] = float(line.rsplit(" ", 1)[1])
    return out


def test_drifted_inputs_cross_the_alert_line_on_their_features(
    ranking: tuple[str, str, Path],
) -> None:
    base, _, _ = ranking
    rng = np.random.default_rng(21)
    for _ in range(60):
        _post(base, *request(rng, variant="steady"))
        _post(base, *request(rng, variant="drifted", count_scale=30.0))
    legacy = VariantSpec(name="legacy", models={"ranker": "old"})
    for _ in range(3):
        ctx, frame = request(rng)
        _post(base, msgspec.structs.replace(ctx, variant=legacy), frame)
    psi = _series(base, "cascade_feature_psi")
    assert all(psi[("drifted", f)] >= ALERT for f in COUNTS), psi
    # 60 requests give 60 user rows (PSI noise about 9/60: the unit test holds user features
    # to 200) but thousands of candidate rows: those must stay below the line.
    steady = {f: v for (variant, f), v in psi.items() if variant == "steady"}
    assert all(steady[f] < ALERT for f in ITEM_NAMES), steady
    scores = _series(base, "cascade_score_psi")
    assert {h for v, h in scores if v == "steady"} == {"p_interact", "p_like"}
    assert all(v < ALERT for (variant, _), v in scores.items() if variant == "steady"), scores
    available = _series(base, "cascade_monitor_reference_available")
    assert available[("legacy", "")] == 0.0 and available[("steady", "")] == 1.0
    body = httpx.get(f"{base}/v1/monitors", timeout=5).json()
    by_variant = {v["variant"]: v for v in body["variants"]}
    assert by_variant["drifted"]["status"] == "alert"
    assert by_variant["legacy"]["status"] == "unavailable"
    assert by_variant["steady"]["window_requests"] == 60
    assert body["thresholds"] == {"warn": 0.1, "alert": ALERT} and body["sample_every"] == 1


# ---- skew --------------------------------------------------------------------------------


def _write_events(folder: Path, now: float, rng: np.random.Generator) -> None:
    """Ten days of clicks, ratings and likes by five users on the catalog's items."""
    rows = []
    for n in range(300):
        kind = str(rng.choice(["click", "rate", "like", "watch"]))
        value = float(rng.integers(1, 6)) if kind == "rate" else 30.0 if kind == "watch" else None
        item = ITEMS[int(rng.integers(0, 40))].item_id
        ts = now - float(rng.uniform(60, 10 * 86_400))
        event = Event(event_id=f"e{n}", user_id=f"u{n % 5}", item_id=item, type=kind,
                      value=value, timestamp=ts)  # fmt: skip
        rows.append(LoggedEvent(event))
    ParquetEventWriter(folder).write(rows)


def _served_as_the_log_says(events: Path, user: str, items: list[str], now: float,
                            extra_events: int) -> tuple[RequestContext, Frame]:  # fmt: skip
    """The request an online store agreeing with the log would send (``extra_events`` more
    events on the user than the log has: the deliberate skew)."""
    labels = pa.table({"user_id": [user] * len(items), "item_id": items,
                       "timestamp": pa.array([now] * len(items), pa.float64())})  # fmt: skip
    t = build_training_set(events, labels, item_genres=GENRES_OF).to_pydict()
    last = t["user_last_event_ts"][0]
    ctx = RequestContext(request_id=uuid.uuid4().hex, now=now, user=UserContext(
        user_id=user, known=True, n_events=t["user_n_events"][0] + extra_events,
        rating_sum=t["user_rating_sum"][0], n_ratings=t["user_n_ratings"][0],
        last_event_ts=None if last is None or last != last else last,
        genre_affinity=t["user_genre_affinity"][0]))  # fmt: skip
    by_id = {r.item_id: r for r in ITEMS}
    counts = np.column_stack([t[f"item_count_{w}"] for w in ("1h", "24h", "7d", "total")])
    frame = Frame(items, {
        "genre_mask": np.array([genre_mask(GENRES_OF[i]) for i in items], dtype=np.int64),
        "release_year": np.array([float(by_id[i].release_year or 0) for i in items]),
        "counts": counts.astype(np.float64), "like_count": np.asarray(t["item_like_count"]),
        "rating_count": np.asarray(t["item_rating_count"]),
        "ease_score": np.zeros(len(items), dtype=np.float32),  # candidate generation's
    })  # fmt: skip
    return ctx, frame


def test_skew_job_finds_exactly_the_feature_the_online_side_got_wrong(
    ranking: tuple[str, str, Path], kafka_bootstrap: str, tmp_path: Path
) -> None:
    base, topic, folder = ranking
    rng = np.random.default_rng(5)
    now = time.time() - 3 * 86_400.0  # the job's window below holds these requests only
    _write_events(tmp_path / "events", now, rng)
    ids = [r.item_id for r in ITEMS]
    for n in range(10):
        items = [ids[int(i)] for i in rng.choice(40, 12, replace=False)]
        _post(base, *_served_as_the_log_says(tmp_path / "events", f"u{n % 5}", items, now - n, 5))
    out = folder / "skew"
    cmd = [sys.executable, "-m", "services.monitors.skew", "--bootstrap", kafka_bootstrap,
           "--topic", topic, "--events-dir", str(tmp_path / "events"), "--settle-s", "86400",
           "--lookback-s", str(4 * 86_400),
           "--item-genres", str(_genres_file(tmp_path)), "--out", str(out)]  # fmt: skip
    report = _run_until_samples(cmd, out / "skew.json", want=10)
    feats = report["features"]
    assert feats["user_activity"]["mismatch_rate"] == 1.0
    assert feats["user_activity"]["status"] == "alert"
    others = {n: f["mismatch_rate"] for n, f in feats.items() if n != "user_activity"}
    assert set(others) >= {"user_recency", "item_count_7d", "item_like_rate", "cross_affinity"}
    assert all(rate == 0.0 for rate in others.values()), others
    assert all(f["compared"] == 10 * 8 for f in feats.values())
    prom = (out / "skew.prom").read_text()
    assert 'cascade_skew_mismatch_rate{feature="user_activity"} 1.0' in prom
    shown = httpx.get(f"{base}/v1/monitors", timeout=5).json()["skew"]
    assert shown["features"]["user_activity"]["mismatch_rate"] == 1.0


def _genres_file(tmp: Path) -> Path:
    path = tmp / "genres.json"
    path.write_text(json.dumps(GENRES_OF))
    return path


def _run_until_samples(cmd: list[str], report: Path, want: int) -> dict[str, Any]:
    """Run the job until it sees ``want`` samples (the service flushes its log every second)."""
    deadline = time.monotonic() + 20
    while True:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(report.read_text())
        if got["samples"] >= want or time.monotonic() > deadline:
            assert got["samples"] == want, got
            return dict(got)
        time.sleep(1.0)


# ---- the real training export -------------------------------------------------------------


def test_trained_ranker_ships_its_reference_through_the_registry(
    registered_models: dict[str, str], mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    """``training.pipeline --tiny`` writes the reference; the registry version of the ranker
    downloads with it; the loaded bundle carries it, every feature and head binned."""
    from shared.models.registry import resolve_and_download
    from shared.monitors.features import FEATURE_NAMES

    got = resolve_and_download("cascade-ranker", "production", mlflow_tracking_uri, tmp_path)
    assert (got.path / REFERENCE_FILE).is_file()
    bundle = load_bundle({"ranker": got.path}, ["ranker"])
    ref = bundle.drift_reference
    assert ref is not None and ref.meta["n_requests"] > 0
    assert set(ref.user) | set(ref.item) == set(FEATURE_NAMES)
    assert set(ref.scores) == {"p_interact", "p_like"}
    for b in [*ref.user.values(), *ref.item.values(), *ref.scores.values()]:
        assert np.all(np.diff(b.edges) > 0) and b.fractions.sum() == pytest.approx(1, abs=1e-4)


def test_skew_job_repeats_and_serves_its_gauges(
    kafka_bootstrap: str, ranking: tuple[str, str, Path], tmp_path: Path
) -> None:
    """``--every``: the job keeps running, each comparison's finish time on ``/metrics``."""
    from deploy.local.processes import free_port

    _, topic, _ = ranking
    port = free_port()
    cmd = [sys.executable, "-m", "services.monitors.skew", "--bootstrap", kafka_bootstrap,
           "--topic", topic, "--events-dir", str(tmp_path / "none"), "--out", str(tmp_path),
           "--item-genres", str(_genres_file(tmp_path)), "--every", "1", "--port", str(port),
           "--loopback", "--settle-s", "0"]  # fmt: skip
    log = tmp_path / "skew.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, runs = time.monotonic() + 30, set()
        while time.monotonic() < deadline and len(runs) < 2:  # two runs: it repeats
            time.sleep(0.5)
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            last = "cascade_skew_last_run_timestamp_seconds "
            runs |= {ln.split()[1] for ln in text.splitlines() if ln.startswith(last)} - {"0.0"}
        assert len(runs) >= 2, runs
        assert all(time.time() - float(ts) < 60 for ts in runs)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
