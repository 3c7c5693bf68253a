"""The load test's report: the text table, loadtest.json, and index.html with PNG plots."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson


def _f(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def format_step(r: Mapping[str, Any]) -> str:
    """One line per step: the client's view, the generator's cost, the load average."""
    c, g = r["client"], r["generator"]
    return (
        f"{r['rate_rps']:>6g} req/s (achieved {r['achieved_rps']:>6.1f}): "
        f"p50 {_f(c['p50_ms']):>7} ms  p99 {_f(c['p99_ms']):>7} ms  errors {c['errors']:>4}  "
        f"degraded {c['degraded_share']:>6.1%}  generator {_f(g['cpu_ms_per_request'], '.2f')} ms "
        f"CPU/req ({_f(g['cpu_share_of_wall'], '.1%')} of a core)  "
        f"load {r['load_avg_1m']['after']:.2f}"
        + (f"  no /metrics from {', '.join(r['scrape_failed'])}" if r["scrape_failed"] else "")
        + (f"  STOP: {r['stop']}" if r["stop"] else "")
    )


def _cell(stage: Mapping[str, Any], budget_ms: float, max_error_share: float) -> str:
    if not stage["calls"]:
        return "-"
    over = stage["error_share"] > max_error_share or (stage["p99_ms"] or 0.0) > budget_ms
    err = f" e{stage['error_share']:.0%}" if stage["error_share"] else ""
    return f"{_f(stage['p99_ms'])}{err}{'!' if over else ''}"


def _work_at(report: Mapping[str, Any], stage: str, rate: float) -> str:
    """The stage service's own p99 at ``rate``: tells slow work from a slow hop."""
    for step in report["steps"]:
        service = step["stages"][stage]["service"]
        if step["rate_rps"] == rate and service and service["p99_ms"] is not None:
            return f" [its service's own work there: p99 {service['p99_ms']:.1f} ms]"
    return ""


def _verdict_line(name: str, v: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    if not v["called"]:
        return f"  {name:<14} budget {v['budget_ms']:>5g} ms: not called at these rates"
    within = (
        "within budget at no rate run"
        if v["within_up_to_rps"] is None
        else f"within budget up to {v['within_up_to_rps']:g} req/s"
    )
    rate = v["first_broke_rps"]
    broke = (
        f"; broke it at {rate:g} req/s: {v['why']}{_work_at(report, name, rate)}"
        if rate is not None
        else "; never broke it"
    )
    return f"  {name:<14} budget {v['budget_ms']:>5g} ms: {within}{broke}"


def format_table(report: Mapping[str, Any]) -> str:
    """Stages x rates (gateway-side p99 in ms), then the verdict per stage and the knee."""
    steps, budget, crit = report["steps"], report["budget"], report["criteria"]
    rates = [s["rate_rps"] for s in steps]
    lines = ["", "p99 ms per stage (gateway side; eN% = failed calls, ! = over budget)"]
    lines.append(f"{'stage':<16}{'budget':>7} " + "".join(f"{r:>13g}" for r in rates))
    rows = [(n, budget["stages"][n], [s["stages"][n] for s in steps]) for n in report["stages"]]
    for name, b, figs in rows:
        cells = "".join(f"{_cell(f, b, crit['max_stage_error_share']):>13}" for f in figs)
        lines.append(f"{name:<16}{b:>7g} {cells}")
    whole = "".join(f"{_f(s['client']['p99_ms']):>13}" for s in steps)
    lines.append(f"{'whole (client)':<16}{budget['total_ms']:>7g} {whole}")
    lines += ["", "verdict against the latency budget:"]
    lines += [_verdict_line(n, v, report) for n, v in report["verdict"]["stages"].items()]
    v = report["verdict"]
    knee = "none of the rates run" if v["knee_rps"] is None else f"{v['knee_rps']:g} req/s"
    lines.append(
        f"knee of the whole path (p99 <= {crit['p99_target_ms']:g} ms, no errors, "
        f"<= {crit['max_degraded_share']:.0%} degraded): {knee}"
    )
    first = ", ".join(v["first_broken"]) or "none"
    lines.append(f"first to break its budget: {first}")
    if len(v["first_broken"]) > 2:  # not one slow stage: everything queues behind the CPU
        rate = v["stages"][v["first_broken"][0]]["first_broke_rps"]
        load = next(s["load_avg_1m"]["after"] for s in steps if s["rate_rps"] == rate)
        lines.append(
            f"  {len(v['first_broken'])} stages broke together at {rate:g} req/s: the path "
            f"saturated there (load average {load:.2f} on {report['machine']['cpus']} CPUs)"
        )
    return "\n".join(lines)


def _series(steps: Sequence[Mapping[str, Any]], *keys: str) -> list[float]:
    out = []
    for s in steps:
        v: Any = s
        for k in keys:
            v = None if v is None else v.get(k)
        out.append(math.nan if v is None else float(v))
    return out


def _stage_panel(ax: Any, name: str, report: Mapping[str, Any]) -> None:
    steps, rates = report["steps"], [s["rate_rps"] for s in report["steps"]]
    ax.plot(rates, _series(steps, "stages", name, "p50_ms"), "o-", label="p50 (gateway)")
    ax.plot(rates, _series(steps, "stages", name, "p99_ms"), "s-", label="p99 (gateway)")
    work = _series(steps, "stages", name, "service", "p99_ms")
    if not all(math.isnan(w) for w in work):
        ax.plot(rates, work, "^--", label="p99 (service's own work)")
    budget = report["budget"]["stages"][name]
    ax.axhline(budget, color="red", linestyle="--", label=f"budget {budget:g} ms")
    broke = report["verdict"]["stages"][name]["first_broke_rps"]
    if broke is not None:
        ax.axvline(broke, color="grey", linestyle=":", label=f"broke at {broke:g} req/s")
    for rate, s in zip(rates, steps, strict=True):
        fig = s["stages"][name]
        if fig["error_share"] and fig["p99_ms"] is not None:  # a cut-off stage: say how often
            ax.annotate(
                f"failed {fig['error_share']:.0%}",
                (rate, fig["p99_ms"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                color="red",
            )
    if not any(s["stages"][name]["calls"] for s in steps):
        ax.text(0.5, 0.5, "not called", transform=ax.transAxes, ha="center", color="grey")
    ax.set_title(name)


def _whole_panel(ax: Any, report: Mapping[str, Any]) -> None:
    steps, rates = report["steps"], [s["rate_rps"] for s in report["steps"]]
    ax.plot(rates, _series(steps, "client", "p50_ms"), "o-", label="p50 (client)")
    ax.plot(rates, _series(steps, "client", "p99_ms"), "s-", label="p99 (client)")
    ax.plot(rates, _series(steps, "gateway_request", "p99_ms"), "^--", label="p99 (gateway)")
    total = report["budget"]["total_ms"]
    ax.axhline(total, color="red", linestyle="--", label=f"budget {total:g} ms")
    target = report["criteria"]["p99_target_ms"]
    if target != total:
        ax.axhline(target, color="purple", linestyle="-.", label=f"p99 target {target:g} ms")
    ax.set_title("whole request")


def _plot_latency(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    names = list(report["stages"])
    cols = 4
    rows = math.ceil((len(names) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    panels = list(axes.flat)
    for ax, name in zip(panels, names, strict=False):
        _stage_panel(ax, name, report)
    _whole_panel(panels[len(names)], report)
    rates = [s["rate_rps"] for s in report["steps"]]
    pad = max((max(rates) - min(rates)) * 0.05, 1.0) if rates else 1.0
    plain = ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    for ax in panels[: len(names) + 1]:
        ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0 and math.isfinite(y)]
        if ys and max(ys) / min(ys) > 30:  # ms budgets next to seconds of overload: log scale
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
        else:
            ax.set_ylim(bottom=0)
        if rates:
            ax.set_xlim(min(rates) - pad, max(rates) + pad)
        ax.set_xlabel("request rate (req/s)")
        ax.set_ylabel("ms")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    for ax in panels[len(names) + 1 :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_degraded(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["steps"]
    labels = [f"{s['rate_rps']:g}" for s in steps]
    degraded = [100.0 * s["client"]["degraded_share"] for s in steps]
    errors = [100.0 * s["client"]["errors"] / max(s["requests"], 1) for s in steps]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = range(len(steps))
    ax.bar([i - 0.2 for i in x], degraded, 0.4, label="degraded answers")
    ax.bar([i + 0.2 for i in x], errors, 0.4, label="errors")
    ax.axhline(
        100.0 * report["criteria"]["max_degraded_share"],
        color="red",
        linestyle="--",
        label="knee: max degraded",
    )
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("request rate (req/s)")
    ax.set_ylabel("% of requests")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(report: Mapping[str, Any]) -> str:
    v, crit, steps = report["verdict"], report["criteria"], report["steps"]
    verdict_rows = [
        (
            n,
            sv["budget_ms"],
            _f(sv["within_up_to_rps"], "g"),
            _f(sv["first_broke_rps"], "g"),
            sv["why"] or ("not called" if not sv["called"] else "-"),
        )
        for n, sv in v["stages"].items()
    ]
    step_rows = [
        (
            s["rate_rps"],
            s["achieved_rps"],
            _f(s["client"]["p50_ms"]),
            _f(s["client"]["p99_ms"]),
            _f(s["gateway_request"]["p99_ms"]),
            s["client"]["errors"],
            f"{s['client']['degraded_share']:.1%}",
            s["client"]["degraded_by_stage"] or "",
            _f(s["generator"]["cpu_ms_per_request"], ".3f"),
            _f(s["generator"]["cpu_share_of_wall"], ".1%"),
            s["load_avg_1m"]["after"],
            s["stop"],
        )
        for s in steps
    ]
    knee = "none of the rates run" if v["knee_rps"] is None else f"{v['knee_rps']:g} req/s"
    settings = html.escape(orjson.dumps(report["settings"], option=orjson.OPT_INDENT_2).decode())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Cascade load test</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>Load test against the latency budget</h1>
<p>Gateway {html.escape(report["settings"]["gateway"])}, steps of
{report["settings"]["step_s"]:g} s, open loop (latency from the scheduled send time).
Knee of the whole path (p99 &le; {crit["p99_target_ms"]:g} ms, no errors, &le;
{crit["max_degraded_share"]:.0%} degraded): <b>{html.escape(knee)}</b>.
First to break its budget: <b>{html.escape(", ".join(v["first_broken"]) or "none")}</b>.</p>
<h2>Verdict per stage</h2>
{
        _table(
            ("stage", "budget ms", "within budget up to req/s", "first broke at req/s", "why"),
            verdict_rows,
        )
    }
<h2>Latency per stage against its budget</h2>
<p>Gateway side: the stage as the request path saw it (the call and its hop). Service side:
the stage service's own handling of the request.</p>
<img src="stages.png" alt="p50 and p99 per stage against request rate">
<h2>Degraded answers and errors per step</h2>
<img src="degraded.png" alt="share of degraded answers per step">
<h2>Steps</h2>
{
        _table(
            (
                "req/s",
                "achieved",
                "p50 ms",
                "p99 ms",
                "gateway p99 ms",
                "errors",
                "degraded",
                "degraded by stage",
                "generator CPU ms/req",
                "generator CPU share",
                "load 1m",
                "stopped",
            ),
            step_rows,
        )
    }
<h2>Settings</h2><pre>{settings}</pre>
<p>All figures: <a href="loadtest.json">loadtest.json</a>.</p>
</body></html>
"""


def write_report(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write loadtest.json, stages.png, degraded.png and index.html into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "json": out_dir / "loadtest.json",
        "stages_png": out_dir / "stages.png",
        "degraded_png": out_dir / "degraded.png",
        "html": out_dir / "index.html",
    }
    # orjson writes NaN as null: a figure without observations reads as "none" in JSON.
    files["json"].write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    _plot_latency(report, files["stages_png"])
    _plot_degraded(report, files["degraded_png"])
    files["html"].write_text(_html(report))
    return files
