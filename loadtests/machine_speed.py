"""How fast this machine runs two fixed workloads, printed beside every benchmark's figures.

The same code measured 1.5-1.7x apart on two machines of the same kind here (docs/serving.md,
"The same benchmark on a slower machine"), with no steal time on either: CPU per request is a
property of the code and of the host CPU. These two figures let a reader scale a run from
another machine: an interpreted Python loop (what most of the request path's glue is) and a
small float32 matrix product on one thread (what ONNX Runtime's Gemm nodes are).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

PY_LOOP_ITERATIONS = 1_000_000
MATMUL_SIZE = 256
MATMUL_REPEATS = 50


def _python_loop() -> None:
    total = 0
    for i in range(PY_LOOP_ITERATIONS):
        total += i


def _matmul(a: np.ndarray, b: np.ndarray) -> None:
    for _ in range(MATMUL_REPEATS):
        a @ b


def _cpu_ms(work: Callable[..., None], rounds: int, *args: Any) -> float:
    """Median CPU milliseconds of ``rounds`` calls of ``work`` (process time, not wall)."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        work(*args)
        times.append((time.process_time() - start) * 1000.0)
    return float(np.median(times))


def reference_speed(rounds: int = 5) -> dict[str, float]:
    """CPU ms of 1M interpreted additions and of 50 256x256 float32 products (medians)."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32) for _ in range(2))
    return {
        "python_loop_1m_ms": round(_cpu_ms(_python_loop, rounds), 2),
        "matmul_256_x50_ms": round(_cpu_ms(_matmul, rounds, a, b), 2),
    }
