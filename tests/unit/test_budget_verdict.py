"""The verdict: from synthetic per-step figures it names the stage that broke and the rate."""

from __future__ import annotations

import math

from loadtests.budget_verdict import (
    Criteria,
    PathStep,
    StageStep,
    broken_badly,
    judge,
    judge_stage,
    knee,
)

BUDGETS = {"candidates": 20.0, "filtering": 8.0, "ranking": 12.0, "fallback": 5.0}
RATES = (25.0, 50.0, 75.0, 100.0)
CRIT = Criteria(p99_target_ms=45.0)


def _steps(p99s: list[float], errors: list[dict[str, float]] | None = None) -> list[StageStep]:
    errors = errors or [{} for _ in p99s]
    return [
        StageStep(rate, 10 * rate, p99 / 2, p99, err)
        for rate, p99, err in zip(RATES, p99s, errors, strict=True)
    ]


def _healthy() -> dict[str, list[StageStep]]:
    return {
        "candidates": _steps([6.0, 7.0, 9.0, 12.0]),
        "filtering": _steps([1.0, 1.2, 1.5, 2.0]),
        "ranking": _steps([5.0, 8.0, 14.5, 30.0]),  # over its 12 ms from 75 req/s on
        "fallback": [StageStep(r, 0, math.nan, math.nan) for r in RATES],  # never called
    }


def _path(p99s: list[float], degraded: list[float] | None = None) -> list[PathStep]:
    degraded = degraded or [0.0] * len(p99s)
    return [
        PathStep(rate, int(20 * rate), p99, 0, d)
        for rate, p99, d in zip(RATES, p99s, degraded, strict=True)
    ]


def test_names_the_stage_and_the_rate_where_its_p99_passed_the_budget() -> None:
    v = judge(BUDGETS, _healthy(), _path([20.0, 25.0, 40.0, 70.0]), CRIT)
    assert v.first_broken == ["ranking"]
    ranking = v.stages["ranking"]
    assert (ranking.within_up_to_rps, ranking.first_broke_rps) == (50.0, 75.0)
    assert "p99 14.5 ms > 12 ms" in ranking.why
    for name in ("candidates", "filtering"):
        assert v.stages[name].first_broke_rps is None
        assert v.stages[name].within_up_to_rps == 100.0
    assert not v.stages["fallback"].called and v.stages["fallback"].first_broke_rps is None


def test_a_stage_cut_at_its_deadline_breaks_by_its_timeouts_not_its_p99() -> None:
    """The gateway cuts a timed-out call at the budget, so p99 stays at 12 ms: failures tell."""
    timeouts = [{}, {"timeout": 40.0}, {"timeout": 300.0}, {"timeout": 900.0}]
    steps = _steps([10.0, 11.9, 12.0, 12.0], timeouts)  # 40 of 500 calls = 8% at 50 req/s
    v = judge_stage("ranking", 12.0, steps, max_error_share=0.01)
    assert (v.within_up_to_rps, v.first_broke_rps) == (25.0, 50.0)
    assert v.why.startswith("failed 8.0% of 500 calls") and "timeout 40" in v.why


def test_failures_under_the_threshold_do_not_break_a_stage() -> None:
    steps = _steps([5.0, 5.0, 5.0, 5.0], [{"timeout": 1.0}] * 4)  # 1 in 250+ calls
    assert judge_stage("filtering", 8.0, steps, 0.01).first_broke_rps is None


def test_a_stage_starved_by_the_request_deadline_is_not_blamed() -> None:
    """'deadline': the request's total was spent before the stage ran (earlier stages did it)."""
    steps = _steps([2.0, 2.0, 2.0, 2.0], [{}, {}, {"deadline": 700.0}, {"deadline": 1000.0}])
    v = judge_stage("reranking", 8.0, steps, 0.01)
    assert v.first_broke_rps is None
    assert steps[2].starved_share == 700.0 / 750.0
    mixed = _steps([8.0] * 4, [{"timeout": 50.0, "deadline": 9.0}] * 4)
    why = judge_stage("reranking", 8.0, mixed, 0.01).why
    assert why == "failed 20.0% of 250 calls (timeout 50); 9 more not run, request deadline spent"


def test_broken_at_the_first_rate_has_no_within_rate() -> None:
    v = judge_stage("candidates", 20.0, _steps([25.0, 30.0, 40.0, 50.0]), 0.01)
    assert (v.within_up_to_rps, v.first_broke_rps) == (None, 25.0)


def test_stages_breaking_at_the_same_lowest_rate_are_all_named() -> None:
    stages = _healthy()
    stages["filtering"] = _steps([1.0, 1.0, 9.0, 9.0])
    v = judge(BUDGETS, stages, _path([20.0] * 4), CRIT)
    assert v.first_broken == ["filtering", "ranking"]


def test_nothing_broke() -> None:
    stages = {"filtering": _steps([1.0, 1.0, 1.0, 1.0])}
    v = judge({"filtering": 8.0}, stages, _path([10.0] * 4), CRIT)
    assert v.first_broken == [] and v.knee_rps == 100.0 and v.path_breach == {}


def test_knee_is_the_last_rate_before_the_whole_path_first_missed() -> None:
    # 75 req/s misses (p99 50 > 45); 100 happening to pass later does not move the knee.
    assert knee(_path([20.0, 30.0, 50.0, 40.0]), CRIT) == 50.0
    assert knee(_path([50.0, 30.0, 30.0, 30.0]), CRIT) is None


def test_knee_counts_degraded_answers_and_errors() -> None:
    assert knee(_path([20.0] * 4, [0.0, 0.01, 0.02, 0.0]), CRIT) == 50.0  # 2% > 1%
    steps = _path([20.0] * 4)
    steps[1] = PathStep(50.0, 1000, 20.0, 1, 0.0)  # a single error
    v = judge({}, {}, steps, CRIT)
    assert v.knee_rps == 25.0 and v.path_breach == {50.0: "1 errors"}


def test_knee_with_nothing_answered_is_a_miss() -> None:
    assert knee([PathStep(25.0, 500, math.nan, 500, 0.0)], CRIT) is None


def test_stop_only_when_broken_badly() -> None:
    assert broken_badly(PathStep(50.0, 1000, 60.0, 0, 0.2), CRIT) == ""  # missed, not badly
    assert "degraded" in broken_badly(PathStep(50.0, 1000, 60.0, 0, 0.6), CRIT)
    assert "errors" in broken_badly(PathStep(50.0, 1000, 20.0, 60, 0.0), CRIT)
    assert "p99" in broken_badly(PathStep(50.0, 1000, 4 * 45.0 + 1, 0, 0.0), CRIT)
    assert broken_badly(PathStep(50.0, 1000, math.nan, 0, 0.0), CRIT)
