"""The seed report: mean ± sd per model and metric, validation beside test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.evaluation.report import aggregate, write_seed_report


def _run(ndcg: float, val: float, lam: float) -> dict[str, dict[str, dict[str, float]]]:
    return {"recbole": {"ease": {"ndcg@10": ndcg, "val_ndcg@10": val, "lambda": lam}}}


RUNS = {42: _run(0.30, 0.25, 250.0), 7: _run(0.34, 0.27, 500.0), 2020: _run(0.32, 0.26, 250.0)}


def test_aggregate_is_mean_and_sample_sd_over_seeds() -> None:
    s = aggregate(RUNS)["recbole"]["ease"]
    assert s["ndcg@10"]["mean"] == pytest.approx(0.32)
    assert s["ndcg@10"]["sd"] == pytest.approx(0.02)  # sqrt((0.02² + 0.02²) / 2)
    assert s["val_ndcg@10"]["n"] == 3


def test_seed_report_files(tmp_path: Path) -> None:
    js, md = write_seed_report(tmp_path, RUNS, "header")
    payload = json.loads(js.read_text())
    assert payload["seeds"] == [7, 42, 2020] and set(payload["runs"]) == {"7", "42", "2020"}
    text = md.read_text()
    assert "| model | val_ndcg@10 | ndcg@10 |" in text
    assert "| ease | 0.2600 ± 0.0100 | 0.3200 ± 0.0200 |" in text
    assert "EASE λ chosen on validation per seed: [500.0, 250.0, 250.0]" in text
