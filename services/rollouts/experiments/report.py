"""An experiment's HTML page: the effect and its always-valid interval over time, and the arms.

Plain inline SVG (no plotting library in the serving image, no script): one chart per treatment
arm of the primary metric's relative lift against the control, the interval shaded, zero
drawn; for an interleaving experiment the graded read first (the mean per-user credit margin of
the second arm over the first, 0 drawn: the verdict's test), then the share of users
preferring the second arm (0.5 drawn).
"""

from __future__ import annotations

import html
import math
import time
from typing import Any

W, H, PAD = 640, 220, 40


def _series(looks: list[dict[str, Any]], arm: str, primary: str) -> list[tuple[float, ...]]:
    """(ts, estimate, low, high) per look (looks without the figure are skipped); for an
    interleaving experiment ``primary`` is "graded" (the mean margin) or "share"."""
    out: list[tuple[float, ...]] = []
    for look in looks:
        f = look["figures"]
        if f.get("kind") == "interleaving":
            t = f.get("graded" if primary == "graded" else "test")
            if t is None:
                continue
            estimate = t["mean_margin"] if primary == "graded" else t["share_preferring"].get(arm)
            point = (estimate, t["ci_low"], t["ci_high"])
        else:
            row = f.get("comparisons", {}).get(arm, {}).get(primary, {})
            point = (row.get("lift"), row.get("ci_low"), row.get("ci_high"))
        if all(v is not None and math.isfinite(v) for v in point):
            out.append((look["ts"], *point))
    return out


def chart(points: list[tuple[float, ...]], reference: float, label: str) -> str:
    """An SVG line of the estimate with its interval band over time."""
    if not points:
        return f"<p>{html.escape(label)}: no look with enough users yet.</p>"
    t0, t1 = points[0][0], max(points[-1][0], points[0][0] + 1e-9)
    lows = [max(p[2], -1.0) for p in points]
    highs = [min(p[3], 3.0) for p in points]  # an early interval may be unbounded: clip
    lo, hi = min([*lows, reference]), max([*highs, reference])
    span = (hi - lo) or 1.0

    def x(t: float) -> float:
        return PAD + (t - t0) / (t1 - t0) * (W - 2 * PAD) if t1 > t0 else W / 2

    def y(v: float) -> float:
        return H - PAD - (v - lo) / span * (H - 2 * PAD)

    band = " ".join(f"{x(p[0]):.1f},{y(h):.1f}" for p, h in zip(points, highs, strict=True))
    band += " " + " ".join(
        f"{x(p[0]):.1f},{y(lw):.1f}" for p, lw in reversed(list(zip(points, lows, strict=True)))
    )
    line = " ".join(f"{x(p[0]):.1f},{y(p[1]):.1f}" for p in points)
    last = points[-1]
    return (
        f'<svg width="{W}" height="{H}" role="img" aria-label="{html.escape(label)}">'
        f'<text x="{PAD}" y="16" font-size="13">{html.escape(label)}: {last[1]:+.3f} '
        f"[{last[2]:+.3f}, {last[3]:+.3f}]</text>"
        f'<polygon points="{band}" fill="#9ecae1" opacity="0.6"/>'
        f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(reference):.1f}" y2="{y(reference):.1f}" '
        f'stroke="#555" stroke-dasharray="4"/>'
        f'<polyline points="{line}" fill="none" stroke="#08519c" stroke-width="2"/>'
        f'<text x="{PAD}" y="{H - 8}" font-size="11">{_clock(t0)}</text>'
        f'<text x="{W - PAD}" y="{H - 8}" font-size="11" text-anchor="end">{_clock(t1)}</text>'
        f'<text x="4" y="{y(hi):.1f}" font-size="11">{hi:+.2f}</text>'
        f'<text x="4" y="{y(lo):.1f}" font-size="11">{lo:+.2f}</text>'
        "</svg>"
    )


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _arms_table(figures: dict[str, Any]) -> str:
    cols = ("users", "requests", "impressions", "clicks", "ctr", "clicks_per_user",
            "likes_per_user", "watch_s_per_user")  # fmt: skip
    list_cols = ("distinct_items", "exposure_gini", "diversity", "latency_p50_ms",
                 "latency_p99_ms")  # fmt: skip
    head = "".join(f"<th>{c}</th>" for c in ("arm", *cols, *list_cols))
    rows = "".join(
        "<tr><td>" + html.escape(arm) + "</td>"
        + "".join(_cell(t.get(c)) for c in cols)
        + "".join(_cell(t.get("lists", {}).get(c)) for c in list_cols) + "</tr>"
        for arm, t in figures.get("arms", {}).items()
    )  # fmt: skip
    return f"<table border=1 cellpadding=4><tr>{head}</tr>{rows}</table>"


def _cell(value: Any) -> str:
    return f"<td>{'' if value is None else html.escape(str(value))}</td>"


def _novelty_table(rows: list[dict[str, Any]], arms: list[str]) -> str:
    """Clicks per request by days since first exposure (a falling lift: novelty)."""
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(a)}</th>" for a in arms)
    body = ""
    for row in rows:
        cells = ""
        for a in arms:
            r = row.get(a, {})
            lift = f" ({r['lift']:+.2f})" if r.get("lift") is not None else ""
            cells += f"<td>{r.get('clicks_per_request')}{lift}</td>"
        body += f"<tr><td>{row['day']}</td>{cells}</tr>"
    return ("<h2>Novelty: clicks per request by days since first exposure (lift)</h2>"
            f"<table border=1 cellpadding=4><tr><th>day</th>{head}</tr>{body}</table>")  # fmt: skip


def _interleaving_parts(
    looks: list[dict[str, Any]], latest: dict[str, Any], arms: list[str]
) -> list[str]:
    """The graded read (the verdict's), then the sign test's share, each charted over time."""
    a, b = arms[0], arms[1]
    graded = latest.get("graded") or {}
    winner = latest.get("winner")
    return [
        chart(
            _series(looks, b, "graded"),
            0.0,
            f"credited clicks per user, {b} minus {a} (graded read)",
        ),
        f"<p>graded read (the verdict): winner <b>{html.escape(str(winner or 'none yet'))}</b>; "
        f"{graded.get('users')} users, mean margin {graded.get('mean_margin')}, always-valid "
        f"interval [{graded.get('ci_low')}, {graded.get('ci_high')}], p = "
        f"{graded.get('p_value')}; share of credited clicks "
        f"{html.escape(str(graded.get('credit_share')))}; fixed-horizon t-test p = "
        f"{graded.get('t_test_p')}; {latest.get('neutral_clicks', 0)} clicks on neutral items "
        "(both rankers' pick) credit neither</p>",
        chart(_series(looks, b, "share"), 0.5, f"share of users preferring {b} (sign test)"),
        f"<p>preferences: {html.escape(str(latest.get('preferences', {})))}; sign test: "
        f"{html.escape(str(latest.get('test')))}</p>",
    ]


def render(experiment: dict[str, Any], looks: list[dict[str, Any]]) -> str:
    """The page of one experiment from its description and its looks (oldest first)."""
    name = html.escape(experiment["id"])
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title></head>"
             f"<body><h1>Experiment {name}</h1><p>{html.escape(experiment['kind'])} in layer "
             f"{html.escape(experiment['layer'])}, {html.escape(experiment['state'])}; "
             f"{len(looks)} looks.</p>"]  # fmt: skip
    if not looks:
        parts.append("<p>No look yet.</p></body></html>")
        return "".join(parts)
    latest = looks[-1]["figures"]
    primary = latest.get("primary", "clicks_per_user")
    arms = [a["name"] for a in experiment["arms"]]
    if latest.get("kind") == "interleaving":
        parts.extend(_interleaving_parts(looks, latest, arms))
    else:
        for arm in arms[1:]:
            parts.append(chart(_series(looks, arm, primary), 0.0,
                               f"{arm} vs {arms[0]}: {primary} lift"))  # fmt: skip
        srm = latest.get("srm", {})
        parts.append(f"<p>sample ratio: p = {srm.get('p_value')} "
                     f"({'MISMATCH' if srm.get('mismatch') else 'ok'}), users "
                     f"{html.escape(str(srm.get('observed')))}</p>")  # fmt: skip
        for arm, comparison in latest.get("comparisons", {}).items():
            cuped = comparison.get("cuped")
            if cuped:
                seq = cuped.get("sequential") or {}
                parts.append(f"<p>{html.escape(arm)} CUPED ({cuped['metric']}): lift "
                             f"{cuped['lift']}, variance reduction "
                             f"{cuped['variance_reduction']}; always-valid lift "
                             f"{seq.get('lift')} [{seq.get('ci_low')}, {seq.get('ci_high')}] "
                             f"{html.escape(str(seq.get('decision', '')))}</p>")  # fmt: skip
    parts.append(_arms_table(latest))
    parts.append(_novelty_table(latest.get("novelty", []), arms))
    parts.append("</body></html>")
    return "".join(parts)
