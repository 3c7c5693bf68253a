"""`make evaluate-seeds`: every model trained and evaluated on both protocols under several seeds.

python -m training.seeds [--seeds 42 2020 7] [--tiny] [--reports reports/]

The seed picks RecBole's per-user shuffle and every model's initialisation (the temporal split
itself has no seed: there it varies the training only). Writes reports/evaluation_seeds.{json,md}:
mean ± sd per model, validation beside test. Nothing is exported or registered.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from training import pipeline  # first: it sets the thread environment before numpy loads
from training.config import PipelineConfig, tiny_config
from training.data import fetch as fetch_mod
from training.evaluation.report import Runs, write_seed_report

log = logging.getLogger("training.seeds")

DEFAULT_SEEDS = (42, 2020, 7)


def run_seeds(
    seeds: list[int], data_dir: Path, reports: Path, tiny: bool, old_negatives: bool = False
) -> Runs:
    """Train and evaluate once per seed; write the seed report; return every run's metrics."""
    t0 = time.monotonic()
    runs: Runs = {}
    for seed in seeds:
        cfg = tiny_config(seed) if tiny else PipelineConfig(seed=seed)
        cfg.ranker.mask_held_out = not old_negatives
        _, results = pipeline.train_and_evaluate(cfg, data_dir)
        runs[seed] = {name: r.metrics for name, r in results.items()}
        log.info("seed %d done after %.0f s", seed, time.monotonic() - t0)
    header = (
        f"Command: `python -m training.seeds --seeds {' '.join(map(str, seeds))}"
        f"{' --tiny' if tiny else ''}{' --old-negatives' if old_negatives else ''}`; "
        f"{time.monotonic() - t0:.0f} s for all seeds "
        f"(1-min load average {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores). "
        "Hyperparameters (two-tower epochs, ranker checkpoint, EASE λ) are chosen on validation."
    )
    write_seed_report(reports, runs, header)
    return runs


def main(argv: list[str] | None = None) -> int:
    """CLI; exits 1 with one clear line on data errors."""
    from shared.datasets.movielens import DataError

    p = argparse.ArgumentParser(description="Cascade evaluation over several split seeds")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--tiny", action="store_true", help="fast config for tests and smoke runs")
    p.add_argument(
        "--old-negatives",
        action="store_true",
        help="the old ranker negatives rule (validation/test items may be negatives), to compare",
    )
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--data", type=Path, default=fetch_mod.DEFAULT_DEST)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        run_seeds(args.seeds, args.data, args.reports, args.tiny, args.old_negatives)
    except (DataError, fetch_mod.FetchError) as e:
        log.error("evaluation failed: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
