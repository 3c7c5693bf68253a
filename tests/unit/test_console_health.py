"""The console's health aggregation: readiness answers, lag, freshness, models and variants."""

from __future__ import annotations

from pathlib import Path

import shared.observability as obs
from services.console.health import (
    consumers,
    models_held,
    read_variants,
    service_row,
    variants_held,
)
from services.console.upstream import Answer

READY = {"ready": True, "checks": {"redis": {"ok": True, "required": True, "reason": "PONG"}}}
NOT_READY = {
    "ready": False,
    "checks": {
        "kafka": {"ok": False, "required": True, "reason": "broker unreachable"},
        "registry": {"ok": False, "required": False, "reason": "optional, down"},
    },
}


def test_a_service_is_up_not_ready_or_down_with_the_reason() -> None:
    up = service_row("events", "http://x", Answer(200, READY, b"", 1.0))
    assert up["status"] == "up" and up["checks"]["redis"]["reason"] == "PONG"
    not_ready = service_row("events", "http://x", Answer(503, NOT_READY, b"", 1.0))
    assert not_ready["status"] == "not_ready"
    assert not_ready["reason"] == "kafka: broker unreachable"  # optional checks do not count
    down = service_row("events", "http://x", None, "unreachable: connection refused")
    assert down["status"] == "down" and "refused" in down["reason"]
    odd = service_row("events", "http://x", Answer(500, None, b"oops", 1.0))
    assert odd["status"] == "not_ready" and "500" in odd["reason"]


def _gauges(**series: dict[tuple[tuple[str, str], ...], float]) -> obs.Snapshot:
    gauges = {(name, frozenset(labels)): v for name, s in series.items() for labels, v in s.items()}
    return obs.Snapshot({}, {}, gauges)


def test_consumer_lag_and_models_held_come_from_the_scrape() -> None:
    ingest = _gauges(
        cascade_ingest_consumer_lag={(): 42.0},
        cascade_consumer_failures_in_a_row={(("consumer", "ingest"),): 2.0},
    )
    ranking = _gauges(cascade_models_held={
        (("slot", "ranker"), ("alias", "production"), ("model", "cascade-ranker/3")): 1.0,
        (("slot", "ranker"), ("alias", "canary"), ("model", "cascade-ranker/4")): 1.0,
        (("slot", "ranker"), ("alias", "shadow"), ("model", "cascade-ranker/2")): 0.0,
    })  # fmt: skip
    rows = consumers({"ingest": ingest, "ranking": ranking})
    assert rows == [{"service": "ingest", "consumes": "events -> Redis features", "lag": 42.0,
                     "labels": {}, "failures_in_a_row": 2.0}]  # fmt: skip
    held = models_held({"ingest": ingest, "ranking": ranking})
    assert [(r["alias"], r["model"]) for r in held] == [
        ("canary", "cascade-ranker/4"),
        ("production", "cascade-ranker/3"),
    ]


def test_a_variant_is_held_where_every_alias_it_needs_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "variants.yaml"
    path.write_text("variants:\n  canary: {models: {ranker: canary}}\n  diverse: {knobs: {}}\n")
    variants, note = read_variants(str(path))
    assert note == "" and variants["canary"] == {"retrieval": "production", "ranker": "canary"}
    held = [
        {"service": "ranking", "slot": "ranker", "alias": "production", "model": "r/1"},
        {"service": "candidate_generation", "slot": "retrieval", "alias": "production",
         "model": "i/1"},
    ]  # fmt: skip
    rows = {r["name"]: r["held_by"] for r in variants_held(variants, held)}
    assert rows["production"] == {"candidate_generation": True, "ranking": True}
    assert rows["canary"] == {"candidate_generation": True, "ranking": False}
    assert rows["diverse"] == rows["production"]


def test_an_unreadable_variants_file_leaves_production_and_says_why(tmp_path: Path) -> None:
    variants, note = read_variants(str(tmp_path / "missing.yaml"))
    assert list(variants) == ["production"] and "unreadable" in note
