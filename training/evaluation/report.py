"""reports/evaluation.json, reports/evaluation.md and the Recall@K plot."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MD_COLUMNS = (
    "ndcg@10",
    "recall@10",
    "recall@50",
    "recall@100",
    "recall@500",
    "map@10",
    "mrr@10",
    "hit@10",
    "precision@10",
    "auc_interact",
    "auc_like",
    "coverage@10",
    "ild@10",
)


VAL_COLUMNS = ("ndcg@10", "recall@10", "recall@50")
# Each validation figure beside its test figure.
PAIRED = tuple(f"{p}{c}" for c in VAL_COLUMNS for p in ("val_", ""))


def _table(
    models: dict[str, dict[str, Any]], columns: Sequence[str], fmt: Callable[[Any], str]
) -> list[str]:
    """A Markdown table: one row per model, ``fmt`` of each column's value."""
    out = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return out + [
        f"| {name} | " + " | ".join(fmt(m.get(c)) for c in columns) + " |"
        for name, m in models.items()
    ]


def _write_json_and_md(out_dir: Path, stem: str, payload: Any, lines: list[str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    md.write_text("\n".join(lines) + "\n")
    return [js, md]


STAGES = (
    ("retrieval (sources merged)", "stage_retrieval_items", "stage_retrieval_recall", None, None),
    ("after filtering (seen removed)", "stage_filtered_items", "stage_filtered_recall", None, None),
    ("after ranking", None, "stage_ranked_recall@50", "stage_ranked_recall@10",
     "stage_ranked_ndcg@10"),
    ("after re-ranking (MMR)", None, "stage_reranked_recall@50", "stage_reranked_recall@10",
     "stage_reranked_ndcg@10"),
)  # fmt: skip


def _candidate_line(pipeline: dict[str, Any], fmt: Callable[[Any], str]) -> list[str]:
    """Per-stage attribution of the served pipeline (test): how many candidates each stage
    holds and the share of the relevant items still in them."""
    if "stage_retrieval_recall" not in pipeline:
        return []
    lines = [
        "Per-stage attribution of the pipeline (test; recall of the whole candidate list, at "
        "most two-tower + EASE quotas, for the first two rows, Recall@50 after):",
        "",
        "| stage | items per user | recall (list / @50) | Recall@10 | NDCG@10 |",
        "|---|---|---|---|---|",
    ]
    for label, *keys in STAGES:
        lines.append(
            f"| {label} | " + " | ".join(fmt(pipeline.get(k)) if k else "" for k in keys) + " |"
        )
    alone = fmt(pipeline.get("candidate_recall_two_tower"))
    return [*lines, "", f"The two-tower's candidates alone hold recall {alone}.", ""]


def _fmt(v: float | None) -> str:
    return "" if v is None or v != v else f"{v:.4f}"


def write_report(
    out_dir: Path,
    metrics: dict[str, dict[str, dict[str, float]]],
    curves: dict[str, dict[str, dict[int, float]]],
    header: str,
) -> list[Path]:
    """Write the three report files; returns their paths."""
    lines = ["# Evaluation", "", header, ""]
    for split, models in metrics.items():
        lines += [f"## {split}", "", *_table(models, MD_COLUMNS, _fmt), ""]
        lines += [f"Validation (where choices are made) beside test, {split}:", ""]
        lines += [*_table(models, PAIRED, _fmt), ""]
        lines += _candidate_line(models.get("pipeline", {}), _fmt)
    lines.append("![Recall@K](recall_at_k.png)")
    files = _write_json_and_md(out_dir, "evaluation", metrics, lines)
    png = out_dir / "recall_at_k.png"
    _plot(curves, png)
    return [*files, png]


def _plot(curves: dict[str, dict[str, dict[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.5), squeeze=False)
    for ax, (split, models) in zip(axes[0], curves.items(), strict=True):
        for name, c in models.items():
            ks = sorted(c)
            ax.plot(ks, [c[k] for k in ks], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("K")
        ax.set_ylabel("Recall@K")
        ax.set_title(f"Recall@K: {split}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


Runs = dict[int, dict[str, dict[str, dict[str, float]]]]  # seed → split → model → metric → value


def aggregate(runs: Runs) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """split → model → metric → {mean, sd (n − 1), n} over the seeds that report it."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for per_split in runs.values():
        for split, models in per_split.items():
            for model, metrics in models.items():
                for metric in metrics:
                    vals = [
                        r[split][model][metric]
                        for r in runs.values()
                        if metric in r.get(split, {}).get(model, {})
                    ]
                    sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
                    stats = {"mean": statistics.fmean(vals), "sd": sd, "n": float(len(vals))}
                    out.setdefault(split, {}).setdefault(model, {})[metric] = stats
    return out


def _mean_sd(s: dict[str, float] | None) -> str:
    if s is None:
        return ""
    return f"{s['mean']:.4f} ± {s['sd']:.4f}" if s["sd"] == s["sd"] else f"{s['mean']:.4f}"


def _per_seed(runs: Runs, split: str) -> list[str]:
    """Pipeline against EASE per seed (test NDCG@10): the issue's target is every seed."""
    rows = []
    for seed in sorted(runs):
        m = runs[seed].get(split, {})
        if "pipeline" in m and "ease" in m:
            p, e = m["pipeline"]["ndcg@10"], m["ease"]["ndcg@10"]
            vp, ve = m["pipeline"].get("val_ndcg@10"), m["ease"].get("val_ndcg@10")
            delta = f"{100 * (p / e - 1):+.1f}%"
            rows.append(f"| {seed} | {_fmt(vp)} | {_fmt(ve)} | {p:.4f} | {e:.4f} | {delta} |")
    if not rows:
        return []
    head = [
        "| seed | val pipeline | val EASE | test pipeline | test EASE | test Δ |",
        "|---|---|---|---|---|---|",
    ]
    return ["NDCG@10, pipeline against EASE per seed:", "", *head, *rows, ""]


def write_seed_report(out_dir: Path, runs: Runs, header: str) -> list[Path]:
    """evaluation_seeds.{json,md}: every model's mean ± sd over the seeds, validation beside
    test; the json also keeps each seed's figures."""
    summary = aggregate(runs)
    payload = {
        "seeds": sorted(runs),
        "summary": summary,
        "runs": {str(k): v for k, v in runs.items()},
    }
    lines = ["# Evaluation over split seeds", "", header, ""]
    for split, models in summary.items():
        lines += [f"## {split} (mean ± sd over seeds {', '.join(map(str, sorted(runs)))})", ""]
        lines += _table(models, PAIRED, _mean_sd)
        lams = [runs[s][split]["ease"].get("lambda") for s in sorted(runs) if split in runs[s]]
        lines += ["", f"EASE λ chosen on validation per seed: {lams}", ""]
        lines += _per_seed(runs, split)
        lines += _candidate_line(models.get("pipeline", {}), _mean_sd)
    return _write_json_and_md(out_dir, "evaluation_seeds", payload, lines)
