"""Hot-path cost of the ranking stage's drift monitor, in CPU µs per ranked request.

Times what the monitor adds to a request, on the ranker's real inputs (``encode_ranker`` of a
500-candidate synthetic frame) and a reference built from random data (the bins' values do not
change the cost): ``hook`` on every request (a counter and two modulo tests), and ``observe``
on a sampled one (binning of ``monitor_max_items`` candidates, the user row and the heads).
The figure per request is ``hook + observe / sample_every`` (the feature log's share is
measured the same way: building its record, at ``feature_log_every``). Medians of repeats.

    python -m loadtests.bench_monitors [--candidates 500] [--sample-every 10] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from services.ranking.item_table import item_table
from services.ranking.monitors.monitor import RankerMonitor
from services.ranking.monitors.settings import MonitorSettings
from shared.features import encode_ranker
from shared.features.config import DEFAULT_CONFIG
from shared.models.bundle import ModelBundle
from shared.monitors.features import FEATURE_NAMES, item_values, user_values
from shared.monitors.reference import build_reference
from shared.pipeline.synthetic import synthetic_context, synthetic_frame, synthetic_user

HEADS = ("p_interact", "p_like")


def _per_call_us(fn: Callable[[], Any], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean CPU µs per call of ``calls`` calls (this thread's
    CPU time: on shared, loaded cores wall time mostly measures the wait for a core)."""
    runs = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        runs.append((time.thread_time() - start) / calls * 1e6)
    return float(np.median(runs))


def run(candidates: int, sample_every: int, log_every: int, repeats: int) -> dict[str, float]:
    """The monitor's costs in µs (per call and per request at the given rates)."""
    ids = [str(i) for i in range(candidates)]
    ctx = synthetic_context(ids)
    feeds = encode_ranker(
        synthetic_user(ids), item_table(synthetic_frame(ids), DEFAULT_CONFIG), ctx.now
    )
    rng = np.random.default_rng(0)
    heads = {h: rng.random(candidates).astype(np.float32) for h in HEADS}
    reference = build_reference(user_values(feeds), item_values(feeds), heads, {"source": "bench"})
    bundle = ModelBundle("bench", drift_reference=reference)
    settings = MonitorSettings(monitor_sample_every=sample_every, feature_log_every=log_every)
    monitor = RankerMonitor(settings, "bench", lambda _key, _record: None)
    monitor.attach_log(lambda _key, _record: None)
    monitor.observe(ctx, bundle, True, True, feeds, heads, ids)  # the window exists
    never = RankerMonitor(MonitorSettings(monitor_sample_every=0, feature_log_every=0), "bench")
    hook = _per_call_us(lambda: never.hook(ctx, bundle), 200_000, repeats)
    drift = _per_call_us(
        lambda: monitor.observe(ctx, bundle, True, False, feeds, heads, ids), 2_000, repeats
    )
    logged = _per_call_us(
        lambda: monitor.observe(ctx, bundle, False, True, feeds, heads, ids), 2_000, repeats
    )
    per_request = hook + (drift / sample_every if sample_every else 0.0)
    per_request += logged / log_every if log_every else 0.0
    return {
        "candidates": candidates,
        "features": len(FEATURE_NAMES),
        "hook_us": hook,
        "sampled_drift_us": drift,
        "sampled_log_us": logged,
        "sample_every": sample_every,
        "feature_log_every": log_every,
        "per_request_us": per_request,
        "load_1min": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures, the per-request cost last."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else "")
    p.add_argument("--candidates", type=int, default=500)
    p.add_argument("--sample-every", type=int, default=MonitorSettings().monitor_sample_every)
    p.add_argument("--log-every", type=int, default=MonitorSettings().feature_log_every)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    got = run(args.candidates, args.sample_every, args.log_every, args.repeats)
    for key, value in got.items():
        sys.stdout.write(f"{key:>20}  {value:.3f}\n" if isinstance(value, float) else
                         f"{key:>20}  {value}\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
