"""GET /v1/monitors: the drift windows of every variant and the last skew report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from services.ranking.monitors.monitor import RankerMonitor

router = APIRouter(tags=["monitors"])


@router.get("/v1/monitors")
async def monitors(request: Request) -> dict[str, Any]:
    """Feature and score PSI per variant over the window, with their bins (docs/monitoring.md)."""
    monitor: RankerMonitor = request.app.state.monitor
    s = monitor.settings
    return {
        "service": monitor.service,
        "sample_every": s.monitor_sample_every,
        "window_s": s.monitor_window_s,
        "min_requests": s.monitor_min_requests,
        "thresholds": {"warn": s.monitor_warn, "alert": s.monitor_alert},
        "variants": monitor.report(),
        "skew": read_skew_report(Path(s.skew_report)),
    }


def read_skew_report(path: Path) -> dict[str, Any] | None:
    """The skew job's last report (None when it has not run or the file is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
