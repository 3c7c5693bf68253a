"""The soak's verdict: growth after the warm-up, per process and for Redis, and errors."""

from __future__ import annotations

from typing import Any

from loadtests.soak import growth, table, verdict


def _samples(gateway: list[float], redis_mb: list[float], errors: int = 0) -> list[dict[str, Any]]:
    return [
        {"t_s": 20.0 * k, "requests": 100, "errors": errors if k == 2 else 0, "p99_ms": 30.0,
         "rss_mb": {"gateway": g, "ranking": 300.0, "broker": 20.0 * (k + 1)},
         "redis_used_mb": r, "redis_keys": int(1000 * r) + 100 * k, "redis_marks": 100 * k}
        for k, (g, r) in enumerate(zip(gateway, redis_mb, strict=True))
    ]  # fmt: skip


def test_growth_is_measured_from_the_end_of_the_warm_up() -> None:
    assert growth([100.0, 200.0, 200.0, 210.0], warm=1) == 0.05  # the warm-up climb is free


def test_a_leak_fails_and_a_plateau_passes() -> None:
    flat = verdict(
        bound=20_000, samples=_samples([150, 200, 201, 202, 203], [10, 12, 12, 12.1, 12.2]), warm=1
    )
    assert flat["passed"] and flat["rss_growth"]["gateway"] < 0.02
    assert flat["rss_growth"]["broker"] > 1  # reported, not judged (memory-only broker)
    leak = verdict(
        bound=20_000, samples=_samples([150, 200, 215, 230, 245], [10, 12, 12, 12.1, 12.2]), warm=1
    )
    assert not leak["passed"] and not leak["checks"]["RSS growth < 10% for every Cascade process"]
    redis = verdict(
        bound=20_000, samples=_samples([150, 200, 201, 202, 203], [10, 12, 13, 14, 15]), warm=1
    )
    assert redis["checks"]["Redis keys other than dedupe marks <= 20000 (the ids in play)"]
    over = verdict(
        bound=14_000, samples=_samples([150, 200, 201, 202, 203], [10, 12, 13, 14, 15]), warm=1
    )
    assert not over["checks"]["Redis keys other than dedupe marks <= 14000 (the ids in play)"]
    errors = verdict(
        bound=20_000,
        samples=_samples([150, 200, 201, 202, 203], [10, 12, 12, 12, 12], errors=3),
        warm=1,
    )
    assert errors["errors"] == 3 and not errors["checks"]["no errors"]


def test_the_table_names_every_process_and_check() -> None:
    samples = _samples([150, 200, 201], [10, 12, 12])
    report = {"samples": samples, "warmup_samples": 1, "minutes": 1, "rate_rps": 52.5,
              "load_avg": 1.0, "verdict": verdict(samples, 1, 20_000)}  # fmt: skip
    text = table(report)
    assert "| gateway | 200.0 | 201.0 | +0.5% |" in text and "| ranking |" in text
    assert "PASS: no errors" in text and "Redis used memory" in text
