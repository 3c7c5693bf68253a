"""`make train`: data → features → train → evaluate → export → register, in one command.

python -m training.pipeline [--tiny] [--no-register] [--out models/] [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from shared.features.config import DEFAULT_CONFIG
from shared.features.schema import build_schema
from training.config import PipelineConfig, tiny_config
from training.data import fetch as fetch_mod
from training.data.movielens import DataError, MovieLens, load_movielens
from training.data.splits import recbole_split, temporal_split
from training.evaluation.report import write_report
from training.export import (
    PARITY_TOL,
    ExportError,
    ann_recall,
    build_hnsw,
    export_ranker,
    export_two_tower,
    finish_bundle,
    new_bundle,
    publish_bundle,
)  # fmt: skip
from training.protocol import ProtocolResult, run_protocol
from training.ranking import ranker_steps
from training.retrieval import steps_per_run

log = logging.getLogger("training.pipeline")


def _seed_everything(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def _export(res: ProtocolResult, cfg: PipelineConfig, data: MovieLens, out: Path,
            manifest: dict[str, Any]) -> tuple[Path, dict[str, float]]:  # fmt: skip
    """Write the bundle of the production models (trained on the temporal split) to ``out``."""
    fb = res.fb
    b = new_bundle(out)
    uf = {k: v[:16] for k, v in res.extra["user_feeds"].items()}
    itf = fb.item_inputs(np.arange(min(64, len(fb.item_ids))))
    figures = export_two_tower(res.two_tower, uf, itf, b.user_tower)
    (b.user_tower / "item_tower.onnx").rename(b.item_index / "item_tower.onnx")
    np.save(b.item_index / "item_embeddings.npy", res.item_emb.astype(np.float32))
    (b.item_index / "item_ids.json").write_text(json.dumps(fb.item_ids))
    meta = build_hnsw(res.item_emb, cfg.hnsw_m, cfg.hnsw_ef_construction, cfg.hnsw_ef_search,
                      b.item_index / "hnsw_index.bin", cfg.seed)  # fmt: skip
    (b.item_index / "index_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    users = np.asarray(res.extra["user_feeds"]["user_id_hash"])
    from training.retrieval import user_embeddings

    qv = user_embeddings(res.two_tower, res.extra["user_feeds"])[: min(200, len(users))]
    figures["ann_recall@100"] = ann_recall(b.item_index / "hnsw_index.bin", res.item_emb, qv,
                                           min(100, len(res.item_emb)), cfg.hnsw_ef_search)  # fmt: skip
    rf = {k: v[:1] for k, v in res.extra["user_feeds"].items()}
    rf.update(fb.ranker_item_inputs(np.arange(8), float(res.extra["queries"].now[0])))
    from shared.features.encoders import cross_columns

    rf["cross"] = cross_columns(rf["user_genre_affinity"], rf["item_genres"])
    figures.update(export_ranker(res.ranker, rf, b.ranker))
    (b.ranker / "ranker_meta.json").write_text(json.dumps({
        "heads": ["p_interact", "p_like"], "score": "p_interact + like_weight * p_like",
        "like_weight": cfg.ranker.like_weight, "like_threshold": fb.cfg.like_threshold,
        "n_candidates": cfg.n_candidates, "mmr_lambda": cfg.mmr_lambda, "rerank_depth": cfg.rerank_depth,
    }, indent=2) + "\n")  # fmt: skip
    bad = {k: v for k, v in figures.items() if k.startswith("parity") and v > PARITY_TOL}
    if bad:
        raise ExportError(f"ONNX parity above {PARITY_TOL}: {bad}")
    schema = build_schema(fb.cfg, cfg.retrieval.dim)
    finish_bundle(b, schema, manifest | {"export": figures})
    return b.root, figures


def run(
    cfg: PipelineConfig, data_dir: Path, out: Path, reports: Path, register: bool
) -> dict[str, Any]:
    """The whole pipeline; returns the evaluation metrics."""
    from tqdm import tqdm

    from shared.model_registry import check_reachable

    t0 = time.monotonic()
    _seed_everything(cfg.seed)
    if register:  # fail before an expensive run, not after it
        check_reachable()
    if data_dir == fetch_mod.DEFAULT_DEST:
        fetch_mod.fetch(data_dir)
    data = load_movielens(data_dir)
    if cfg.tiny:  # a consistent subset: the first 300 users' events
        keep = set(sorted(data.interactions["user_id"].unique(), key=int)[:300])
        data.interactions = data.interactions[data.interactions["user_id"].isin(keep)].reset_index(
            drop=True
        )
    splits = {"temporal": temporal_split(data.interactions),
              "recbole": recbole_split(data.interactions, seed=cfg.seed)}  # fmt: skip
    splits = {k: v for k, v in splits.items() if k in cfg.protocols}
    total = sum(steps_per_run(len(s.train), cfg.retrieval) + ranker_steps(len(s.train), cfg.ranker)
                for s in splits.values())  # fmt: skip
    results: dict[str, ProtocolResult] = {}
    with tqdm(total=total, desc="train", unit="step", disable=None) as bar:
        for name, split in splits.items():
            bar.set_postfix_str(name)
            results[name] = run_protocol(data, split, cfg, lambda: bar.update(1))
    metrics = {k: r.metrics for k, r in results.items()}
    curves = {k: r.curves for k, r in results.items()}
    bundle_id = uuid.uuid4().hex
    manifest = {"bundle_id": bundle_id, "data_fingerprint": data.fingerprint, "seed": cfg.seed,
                "feature_version": DEFAULT_CONFIG.version, "trained_on": "temporal split (train)",
                "metrics": metrics.get("temporal", {}).get("pipeline", {})}  # fmt: skip
    prod = results.get("temporal") or next(iter(results.values()))
    tmp_root, figures = _export(prod, cfg, data, out, manifest)
    header = (f"Command: `python -m training.pipeline{' --tiny' if cfg.tiny else ''}`, seed {cfg.seed}, "
              f"data sha256 {data.fingerprint[:16]}…; ONNX/ANN checks: "
              + ", ".join(f"{k}={v:.2g}" for k, v in figures.items()))  # fmt: skip
    report_files = write_report(reports, metrics, curves, header)
    bundle = publish_bundle(type("B", (), {"root": tmp_root})(), out)  # type: ignore[arg-type]
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
            Bundle(bundle).parts(), report_files, cfg.flat(), flat | figures,
            {"bundle_id": bundle_id, "data_fingerprint": data.fingerprint,
             "feature_schema_version": DEFAULT_CONFIG.version},
        )  # fmt: skip
        log.info("registered: %s", versions)
    log.info(
        "pipeline finished in %.1fs; bundle %s; report %s", time.monotonic() - t0, bundle, reports
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    """CLI; exits 1 with one clear line on data, export or registry errors."""
    from shared.model_registry import RegistryUnavailableError
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
