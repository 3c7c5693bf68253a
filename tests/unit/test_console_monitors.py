"""The monitors page's figures from ``GET /v1/monitors`` answers: PSI rows with their status,
the skew report's mismatch rates, and every way there is nothing to show, each with its reason."""

from __future__ import annotations

from typing import Any

from services.console.monitors import monitors_view


def _figure(name: str, psi: float | None, status: str) -> dict[str, Any]:
    bins = {"edges": [0.5], "reference": [0.5, 0.5], "served": [0.4, 0.6]}
    return {"name": name, "psi": psi, "status": status, "bins": bins}


def _answer(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "ranking", "sample_every": 10, "window_s": 1800, "min_requests": 200,
        "thresholds": {"warn": 0.1, "alert": 0.25},
        "variants": [
            {"variant": "production", "model": "cascade-ranker/3 (@production)",
             "reference": True, "window_requests": 412, "window_items": 82400, "status": "alert",
             "features": [_figure("user_activity", 0.03, "ok"), _figure("item_age", 0.3, "alert")],
             "scores": [_figure("p_like", 0.12, "warn")]},
            {"variant": "old", "model": "cascade-ranker/1 (@old)", "reference": False,
             "window_requests": 0, "window_items": 0, "status": "unavailable",
             "features": [], "scores": []},
            {"variant": "quiet", "model": "cascade-ranker/3 (@production)", "reference": True,
             "window_requests": 7, "window_items": 448, "status": "insufficient",
             "features": [_figure("user_activity", None, "insufficient")], "scores": []},
        ],
        "skew": None,
    }  # fmt: skip
    return body | over


def test_each_figure_keeps_its_psi_status_and_bins() -> None:
    view = monitors_view("ranking", _answer())
    assert view["available"] is True and view["thresholds"] == {"warn": 0.1, "alert": 0.25}
    prod = view["variants"][0]
    assert prod["status"] == "alert" and prod["reason"] == ""
    assert [(f["name"], f["psi"], f["status"]) for f in prod["features"]] == [
        ("user_activity", 0.03, "ok"),
        ("item_age", 0.3, "alert"),
    ]
    assert prod["scores"][0] | {"reference": None, "served": None} == {
        "name": "p_like", "psi": 0.12, "status": "warn", "reference": None, "served": None,
    }  # fmt: skip
    assert prod["features"][0]["served"] == [0.4, 0.6]


def test_a_bundle_without_reference_and_a_quiet_window_say_why() -> None:
    _, old, quiet = monitors_view("ranking", _answer())["variants"]
    assert old["status"] == "unavailable" and old["features"] == []
    assert "cascade-ranker/1 (@old) ships no drift reference" in old["reason"]
    assert quiet["status"] == "insufficient" and quiet["features"][0]["psi"] is None
    assert quiet["reason"].startswith("7 of 200 sampled requests") and "1 in 10" in quiet["reason"]


def test_the_skew_report_gives_a_mismatch_rate_per_feature() -> None:
    report = {
        "finished_at": 1796150177.9, "samples": 412, "thresholds": {"warn": 0.01, "alert": 0.05},
        "not_compared": ["item_age", "item_year"],
        "features": {
            "user_activity": {"compared": 8240, "mismatches": 0, "mismatch_rate": 0.0,
                              "status": "ok"},
            "item_count_1h": {"compared": 8240, "mismatches": 824, "mismatch_rate": 0.1,
                              "status": "alert"},
        },
    }  # fmt: skip
    skew = monitors_view("ranking", _answer(skew=report))["skew"]
    assert skew["available"] is True and skew["not_compared"] == ["item_age", "item_year"]
    assert {f["name"]: (f["mismatch_rate"], f["status"]) for f in skew["features"]} == {
        "user_activity": (0.0, "ok"),
        "item_count_1h": (0.1, "alert"),
    }
    none = monitors_view("ranking", _answer())["skew"]
    assert none["available"] is False and "no skew report" in none["reason"]


def test_a_dead_ranking_service_is_unavailable_with_its_reason() -> None:
    error = {"service": "ranking", "kind": "unreachable", "detail": "GET /v1/monitors: refused"}
    view = monitors_view("ranking", {"error": error})
    assert view["available"] is False and view["variants"] == []
    assert view["reason"] == "unreachable: GET /v1/monitors: refused"
    assert view["thresholds"] == {"warn": 0.1, "alert": 0.25}  # the documented lines


def test_no_variant_yet_or_drift_off_is_said() -> None:
    assert monitors_view("ranking", _answer(variants=[]))["reason"] == "no sampled request yet"
    off = monitors_view("ranking", _answer(variants=[], sample_every=0))
    assert "off" in off["reason"] and off["available"] is True


def test_a_malformed_answer_shows_nothing_rather_than_failing() -> None:
    view = monitors_view("ranking", {"variants": "x", "skew": [1], "thresholds": 3})
    assert view["variants"] == [] and view["skew"]["available"] is False
    assert view["thresholds"] == {"warn": 0.1, "alert": 0.25}
