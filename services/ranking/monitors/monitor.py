"""RankerMonitor: samples ranked requests into per-variant drift windows and the feature log.

The request path pays one counter increment and two modulo tests; a sampled request (1 in
``monitor_sample_every``) pays the binning of at most ``monitor_max_items`` candidates (see
``loadtests/bench_monitors.py`` for the measured cost). PSI is computed when read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np

from services.ranking.monitors.settings import MonitorSettings
from services.ranking.monitors.window import DriftWindow, Figure
from services.ranking.scorer import Observe
from shared.models.bundle import ModelBundle
from shared.monitors.features import ITEM_NAMES, USER_NAMES, item_values, user_values
from shared.monitors.psi import status
from shared.monitors.reference import DriftReference
from shared.pipeline.context import RequestContext

MAX_VARIANTS = 32  # windows kept; the least recently sampled goes first
LogSample = Callable[[str, dict[str, Any]], None]


@dataclass
class _Variant:
    model: str
    reference: DriftReference | None
    window: DriftWindow | None
    seen: float


class RankerMonitor:
    """Drift windows by variant, fed by sampled requests of the ranking stage."""

    def __init__(
        self, settings: MonitorSettings, service: str, log_sample: LogSample | None = None
    ) -> None:
        self.settings = settings
        self.service = service
        self.log_sample = log_sample
        self._every = settings.monitor_sample_every
        self._log_every = settings.feature_log_every if log_sample is not None else 0
        self._n = 0
        self._variants: dict[str, _Variant] = {}
        self._lock = threading.Lock()

    def attach_log(self, log_sample: LogSample) -> None:
        """Start logging 1 in ``feature_log_every`` requests' features to ``log_sample``."""
        self.log_sample = log_sample
        self._log_every = self.settings.feature_log_every

    # ---- the request path --------------------------------------------------------------
    def hook(self, ctx: RequestContext, bundle: ModelBundle) -> Observe | None:
        """What the scorer calls with its feeds and head scores, or None (not sampled)."""
        self._n += 1
        drift = self._every > 0 and self._n % self._every == 0
        logged = self._log_every > 0 and self._n % self._log_every == 0
        if not (drift or logged):
            return None
        return partial(self.observe, ctx, bundle, drift, logged)

    def observe(
        self,
        ctx: RequestContext,
        bundle: ModelBundle,
        drift: bool,
        logged: bool,
        feeds: dict[str, np.ndarray],
        heads: dict[str, np.ndarray],
        item_ids: list[str],
    ) -> None:
        """Count a sampled request into its variant's window; log its features if picked."""
        n = len(next(iter(heads.values()))) if heads else 0
        if n == 0:
            return
        if drift:
            window = self._window(ctx.variant.name, bundle, list(heads))
            if window is not None:
                rows = _spread(n, self.settings.monitor_max_items)
                per_row = item_values(feeds, rows, [heads[h] for h in window.heads])
                window.add(time.monotonic(), user_values(feeds)[0], per_row)
        if logged and self.log_sample is not None:
            rows = _spread(n, self.settings.feature_log_items)
            self.log_sample(ctx.user.user_id, sample_record(ctx, bundle, feeds, item_ids, rows))

    def _window(self, variant: str, bundle: ModelBundle, heads: list[str]) -> DriftWindow | None:
        ref = bundle.drift_reference
        now = time.monotonic()
        held = self._variants.get(variant)
        if held is None or held.reference is not ref:
            s = self.settings
            window = DriftWindow(ref, heads, s.monitor_window_s, s.monitor_slices) if ref else None
            held = _Variant(bundle.labels.get("ranker", bundle.bundle_id), ref, window, now)
            with self._lock:
                if len(self._variants) >= MAX_VARIANTS and variant not in self._variants:
                    del self._variants[min(self._variants, key=lambda v: self._variants[v].seen)]
                self._variants[variant] = held
        held.seen = now
        return held.window

    # ---- reading -----------------------------------------------------------------------
    def report(self) -> list[dict[str, Any]]:
        """Every variant's window as in ``GET /v1/monitors`` (docs/monitoring.md)."""
        with self._lock:
            variants = dict(self._variants)
        return [self._variant_report(name, v) for name, v in sorted(variants.items())]

    def _variant_report(self, name: str, v: _Variant) -> dict[str, Any]:
        out: dict[str, Any] = {"variant": name, "model": v.model, "reference": v.window is not None}
        if v.window is None:
            return out | {"window_requests": 0, "window_items": 0, "status": "unavailable",
                          "features": [], "scores": []}  # fmt: skip
        requests, items, feats, scores = v.window.figures(
            time.monotonic(), self.settings.monitor_min_requests
        )
        feat_json, score_json = [self._figure(f) for f in feats], [self._figure(f) for f in scores]
        worst = _worst([f["status"] for f in feat_json + score_json])
        return out | {"window_requests": requests, "window_items": items, "status": worst,
                      "features": feat_json, "scores": score_json}  # fmt: skip

    def _figure(self, f: Figure) -> dict[str, Any]:
        s = self.settings
        return {
            "name": f.name,
            "psi": None if f.psi is None else round(f.psi, 6),
            "status": status(f.psi, s.monitor_warn, s.monitor_alert),
            "bins": {
                "edges": f.reference.edges.tolist(),
                "reference": np.round(f.reference.fractions, 6).tolist(),
                "served": np.round(f.served, 6).tolist(),
            },
        }


_ORDER = ("alert", "warn", "ok", "insufficient")


def _worst(statuses: list[str]) -> str:
    """The most severe status (``insufficient`` only when nothing was judged)."""
    return next((s for s in _ORDER if s in statuses), "insufficient")


@lru_cache(maxsize=256)
def _spread(n: int, k: int) -> np.ndarray:
    """At most ``k`` row indices spread evenly over ``n`` rows (cached: a few sizes recur)."""
    rows = np.arange(n) if n <= k else np.linspace(0, n - 1, k).astype(np.int64)
    rows.flags.writeable = False
    return rows


def sample_record(
    ctx: RequestContext,
    bundle: ModelBundle,
    feeds: dict[str, np.ndarray],
    item_ids: list[str],
    rows: np.ndarray,
) -> dict[str, Any]:
    """The served features of one request (user features once, item features per row),
    for the skew job to recompute offline at ``ts``."""
    user = user_values(feeds)[0]
    items = item_values(feeds, rows)
    return {
        "request_id": ctx.request_id,
        "user_id": ctx.user.user_id,
        "ts": ctx.now,
        "variant": ctx.variant.name,
        "model": bundle.labels.get("ranker", bundle.bundle_id),
        "item_ids": [item_ids[r] for r in rows.tolist()],
        "user": {n: float(user[j]) for j, n in enumerate(USER_NAMES)},
        "item": {n: items[:, j].round(7).tolist() for j, n in enumerate(ITEM_NAMES)},
    }
