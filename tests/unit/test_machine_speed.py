"""The benchmarks' machine reference: CPU time of fixed work, not wall time."""

from __future__ import annotations

import math
import time

from loadtests.machine_speed import _cpu_ms, reference_speed


def test_waiting_costs_no_cpu_and_work_does() -> None:
    """A sleep is wall time only; a busy loop of the same length is CPU time."""

    def busy(seconds: float) -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    assert _cpu_ms(time.sleep, 3, 0.05) < 10.0
    assert _cpu_ms(busy, 3, 0.05) >= 45.0


def test_reference_speed_gives_both_figures() -> None:
    figures = reference_speed(rounds=1)
    assert set(figures) == {"python_loop_1m_ms", "matmul_256_x50_ms"}
    assert all(math.isfinite(v) and v > 0 for v in figures.values())
