"""Served against recomputed: the mismatch rate per feature, as a report and as gauges.

A value mismatches when ``|served - offline| > atol + rtol * |offline|``: features are
float32 on both sides (about 7 significant digits), so the defaults flag real differences
(an event the online store missed or counted twice, a different definition), not rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

ATOL = 1e-4
RTOL = 1e-3
WARN = 0.01  # the same PIT definitions on both sides: anything above noise is a defect
ALERT = 0.05


def mismatch_report(
    served: Mapping[str, np.ndarray],
    offline: Mapping[str, np.ndarray],
    atol: float = ATOL,
    rtol: float = RTOL,
) -> dict[str, dict[str, Any]]:
    """Per feature: compared values, mismatches, their rate, and the largest difference."""
    out: dict[str, dict[str, Any]] = {}
    for name, off in offline.items():
        srv = served[name]
        diff = np.abs(srv - off)
        bad = ~(diff <= atol + rtol * np.abs(off))  # NaN on either side is a mismatch
        n = int(len(off))
        out[name] = {
            "compared": n,
            "mismatches": int(bad.sum()),
            "mismatch_rate": round(float(bad.mean()), 6) if n else None,
            "max_abs_diff": round(float(np.nanmax(diff)), 6) if n else None,
            "status": _status(float(bad.mean()) if n else None),
        }
    return out


def _status(rate: float | None) -> str:
    if rate is None:
        return "insufficient"
    return "alert" if rate >= ALERT else "warn" if rate >= WARN else "ok"


def prometheus_text(report: Mapping[str, Any]) -> str:
    """The report's gauges in the Prometheus text format (docs/monitoring.md)."""
    lines = [
        "# HELP cascade_skew_mismatch_rate Share of served values that differ from the "
        "offline point-in-time recomputation.",
        "# TYPE cascade_skew_mismatch_rate gauge",
    ]
    feats = report["features"]
    lines += [
        f'cascade_skew_mismatch_rate{{feature="{n}"}} {f["mismatch_rate"]}'
        for n, f in feats.items()
        if f["mismatch_rate"] is not None
    ]
    lines += [
        "# HELP cascade_skew_compared Values the mismatch rate rests on.",
        "# TYPE cascade_skew_compared gauge",
        *(f'cascade_skew_compared{{feature="{n}"}} {f["compared"]}' for n, f in feats.items()),
        "# HELP cascade_skew_last_run_timestamp_seconds When the last comparison finished.",
        "# TYPE cascade_skew_last_run_timestamp_seconds gauge",
        f"cascade_skew_last_run_timestamp_seconds {report['finished_at']}",
    ]
    return "\n".join(lines) + "\n"
