"""reports/evaluation.json, reports/evaluation.md and the Recall@K plot."""

from __future__ import annotations

import json
from pathlib import Path

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


def _fmt(v: float | None) -> str:
    return "" if v is None or v != v else f"{v:.4f}"


def write_report(
    out_dir: Path,
    metrics: dict[str, dict[str, dict[str, float]]],
    curves: dict[str, dict[str, dict[int, float]]],
    header: str,
) -> list[Path]:
    """Write the three report files; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "evaluation.json"
    js.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    lines = ["# Evaluation", "", header, ""]
    for split, models in metrics.items():
        lines += [
            f"## {split}",
            "",
            "| model | " + " | ".join(MD_COLUMNS) + " |",
            "|---" * (len(MD_COLUMNS) + 1) + "|",
        ]
        for name, m in models.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(m.get(c)) for c in MD_COLUMNS) + " |")
        lines.append("")
    lines.append("![Recall@K](recall_at_k.png)")
    md = out_dir / "evaluation.md"
    md.write_text("\n".join(lines) + "\n")
    png = out_dir / "recall_at_k.png"
    _plot(curves, png)
    return [js, md, png]


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
