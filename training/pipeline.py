"""`make train`: data → features → train → evaluate → export → register, in one command.

python -m training.pipeline [--tiny] [--no-register] [--out models/] [--seed 42]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# Other engineers share this machine's cores: OpenMP threads that spin while waiting for a
# descheduled sibling made training 2-3x slower under load. implicit (ALS) runs its own threads
# and asks for a single-threaded BLAS. Both must be set before torch / numpy load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from shared.datasets.movielens import DataError, MovieLens, load_movielens  # noqa: E402
from shared.features.config import DEFAULT_CONFIG  # noqa: E402
from training.bundle_writer import write_bundle  # noqa: E402
from training.config import PipelineConfig, tiny_config  # noqa: E402
from training.data import fetch as fetch_mod  # noqa: E402
from training.data.splits import Split, ranker_holdout, recbole_split, temporal_split  # noqa: E402
from training.evaluation.report import write_report  # noqa: E402
from training.export import ExportError, publish_bundle  # noqa: E402
from training.protocol import ProtocolResult, run_protocol  # noqa: E402
from training.ranking import ranker_steps  # noqa: E402
from training.retrieval import steps_per_run  # noqa: E402

log = logging.getLogger("training.pipeline")

TRAINED_ON = (
    "temporal split: two-tower on the training period; ranker on its last "
    "RankerConfig.holdout_frac, with candidates from a two-tower fit on the rest"
)


def _seed_everything(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    # Multi-threaded CPU scatter-adds (the ranker's per-user gather backward) otherwise sum in
    # a different order each run: same seed, different ranker.
    torch.use_deterministic_algorithms(True)


def _planned_steps(split: Split, cfg: PipelineConfig) -> int:
    """Optimizer steps one protocol will take at most (the progress bar's total)."""
    hold = ranker_holdout(split, cfg.ranker.holdout_frac, cfg.seed, cfg.ranker.query_times)
    fits = [len(hold.fit)] + ([len(split.train)] if cfg.refit_retrieval else [])
    queries = sum(target["user_id"].nunique() for _, target, _ in hold.query_sets())
    return sum(steps_per_run(n, cfg.retrieval) for n in fits) + ranker_steps(
        queries, cfg.n_candidates, cfg.ranker
    )


def train_and_evaluate(
    cfg: PipelineConfig, data_dir: Path
) -> tuple[MovieLens, dict[str, ProtocolResult]]:
    """Load the data, then train and evaluate every model on each protocol of ``cfg``."""
    from tqdm import tqdm

    _seed_everything(cfg.seed)
    if data_dir == fetch_mod.DEFAULT_DEST:
        fetch_mod.fetch(data_dir)
    data = load_movielens(data_dir)
    if cfg.tiny:  # a consistent subset: the first 300 users' events
        keep = set(sorted(data.interactions["user_id"].unique(), key=int)[:300])
        data.interactions = data.interactions[data.interactions["user_id"].isin(keep)].reset_index(
            drop=True
        )
    splits = {
        "temporal": temporal_split(data.interactions),
        "recbole": recbole_split(data.interactions, seed=cfg.seed),
    }
    splits = {k: v for k, v in splits.items() if k in cfg.protocols}
    results: dict[str, ProtocolResult] = {}
    with tqdm(
        total=sum(_planned_steps(s, cfg) for s in splits.values()),
        desc="train",
        unit="step",
        disable=None,
    ) as bar:
        for name, split in splits.items():
            bar.set_postfix_str(name)
            results[name] = run_protocol(data, split, cfg, bar.update)
    return data, results


def run(
    cfg: PipelineConfig, data_dir: Path, out: Path, reports: Path, register: bool
) -> dict[str, Any]:
    """The whole pipeline; returns the evaluation metrics."""
    from shared.models.registry import check_reachable

    t0 = time.monotonic()
    if register:  # fail before an expensive run, not after it
        check_reachable()
    data, results = train_and_evaluate(cfg, data_dir)
    metrics = {k: r.metrics for k, r in results.items()}
    curves = {k: r.curves for k, r in results.items()}
    bundle_id = uuid.uuid4().hex
    manifest = {
        "bundle_id": bundle_id,
        "data_fingerprint": data.fingerprint,
        "seed": cfg.seed,
        "feature_version": DEFAULT_CONFIG.version,
        "trained_on": TRAINED_ON,
        "metrics": metrics.get("temporal", {}).get("pipeline", {}),
    }
    prod = results.get("temporal") or next(iter(results.values()))
    tmp, figures = write_bundle(prod, cfg, out, manifest)
    header = (
        f"Command: `python -m training.pipeline{' --tiny' if cfg.tiny else ''}`, seed {cfg.seed}, "
        f"data sha256 {data.fingerprint[:16]}…; trained and evaluated in "
        f"{time.monotonic() - t0:.0f} s (1-min load average {os.getloadavg()[0]:.1f} at the end, "
        f"{os.cpu_count()} cores); ONNX/ANN checks: "
        + ", ".join(f"{k}={v:.2g}" for k, v in figures.items())
    )
    report_files = write_report(reports, metrics, curves, header)
    bundle = publish_bundle(tmp, out)
    if register:
        from training.export import Bundle
        from training.registry import log_and_register

        flat = {
            f"{s}.{m}.{k}": v
            for s, ms in metrics.items()
            for m, kv in ms.items()
            for k, v in kv.items()
        }
        versions = log_and_register(
            Bundle(bundle).parts(),
            report_files,
            cfg.flat(),
            flat | figures,
            {
                "bundle_id": bundle_id,
                "data_fingerprint": data.fingerprint,
                "feature_schema_version": DEFAULT_CONFIG.version,
            },
        )
        log.info("registered: %s", versions)
    log.info(
        "pipeline finished in %.1fs; bundle %s; report %s", time.monotonic() - t0, bundle, reports
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    """CLI; exits 1 with one clear line on data, export or registry errors."""
    from shared.models.registry import RegistryUnavailableError
    from training.registry import RegistrationError

    p = argparse.ArgumentParser(description="Cascade offline training pipeline")
    p.add_argument("--tiny", action="store_true", help="fast config for tests and smoke runs")
    p.add_argument("--no-register", action="store_true", help="skip MLflow logging/registration")
    p.add_argument("--out", type=Path, default=Path("models"))
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--data", type=Path, default=fetch_mod.DEFAULT_DEST)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = tiny_config(args.seed) if args.tiny else PipelineConfig(seed=args.seed)
    try:
        run(cfg, args.data, args.out, args.reports, not args.no_register)
    except (
        DataError,
        fetch_mod.FetchError,
        ExportError,
        RegistryUnavailableError,
        RegistrationError,
    ) as e:
        log.error("training failed: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
