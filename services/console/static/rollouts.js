// Rollouts and experiments: state, steps, decisions with reasons, shadow diffs, intervals.
"use strict";
(() => {
  const { el, svg, section, table, badge, fmt, when, call, reason } = Cascade;
  const ACTIVE = new Set(["running", "holding", "scheduled"]);

  function figures(obj) {
    if (!obj || typeof obj !== "object") return el("span", { class: "muted" }, "–");
    return el("pre", {}, JSON.stringify(obj, null, 1));
  }

  function history(decisions) {
    return table(["when", "step", "decision", "reasons"], decisions.map((d) => el("tr", {},
      el("td", {}, when(d.ts)), el("td", {}, d.step ?? ""), el("td", {}, badge(d.decision.includes("fail") || d.decision.includes("rollback") ? "bad" : "ok", d.decision)),
      el("td", {}, (d.reasons || []).join("; ")))), { "data-testid": "history" });
  }

  function actions(kind, id, names, out) {
    return el("div", {}, names.map((name) => el("button", {
      "data-action": name,
      onclick: async () => {
        out.textContent = `${name}…`;
        const path = kind === "rollout" ? `/api/rollouts/${id}/${name}` : `/api/experiments/${id}/stop`;
        const res = await call("POST", path, { reason: "from the console" });
        out.textContent = res.ok ? `${name}: done` : `${name} refused (${res.status}): ${reason(res)}`;
        if (res.ok) setTimeout(() => window.dispatchEvent(new HashChangeEvent("hashchange")), 300);
      },
    }, name)), " ", out);
  }

  function rolloutCard(r) {
    const steps = (r.plan.steps || []).map((s, i) => el("li", { class: i === r.step ? "current" : "" },
      `${s.kind} ${fmt(s.share * 100, 0)}% for ${fmt(s.duration_s, 0)} s`, i === r.step ? " ← now" : ""));
    const out = el("span", { class: "status-line", "data-testid": "action-result" });
    return el("div", { class: "card", "data-rollout": r.id },
      el("h3", {}, `${r.id} · ${r.model} `, badge(r.state === "promoted" ? "ok" : (r.state === "holding" ? "hold" : (ACTIVE.has(r.state) ? "warn" : "bad")), r.state)),
      el("p", {}, `phase ${r.phase} · step ${r.step + 1} of ${r.steps} · candidate ${JSON.stringify(r.candidate)}`,
        r.hold_reason ? el("span", { class: "error" }, ` · holding: ${r.hold_reason}`) : ""),
      el("ol", {}, steps),
      el("details", {}, el("summary", {}, "last analysis (guardrails, online metrics, shadow diffs)"), figures(r.last_look)),
      history(r.history || []),
      ACTIVE.has(r.state) ? actions("rollout", r.id, ["promote", "resume", "abort"], out) : null);
  }

  // The interval of a lift against zero, drawn to scale.
  function interval(row) {
    if (!Number.isFinite(row.ci_low) || !Number.isFinite(row.ci_high)) {
      return el("span", { class: "muted" }, "no interval yet");
    }
    const W = 240, H = 18, lo = Math.max(-1, row.ci_low), hi = Math.min(1, row.ci_high);
    const span = Math.max(0.05, Math.abs(lo), Math.abs(hi));
    const x = (v) => W / 2 + (v / span) * (W / 2 - 6);
    return svg("svg", { width: W, height: H, "data-testid": "interval" },
      svg("line", { x1: x(0), x2: x(0), y1: 0, y2: H, stroke: "#a0aec0" }),
      svg("line", { x1: x(lo), x2: x(hi), y1: H / 2, y2: H / 2, stroke: "#2b6cb0", "stroke-width": 4 }),
      row.lift !== null && row.lift !== undefined ? svg("circle", { cx: x(row.lift), cy: H / 2, r: 4, fill: "#1d2733" }) : null);
  }

  function comparisons(analysis) {
    if (!analysis) return el("p", { class: "muted" }, "no look yet (the first comes once exposure is read)");
    const f = analysis.figures || analysis;
    const rows = [];
    for (const [arm, metrics] of Object.entries(f.comparisons || {})) {
      for (const [metric, row] of Object.entries(metrics)) {
        rows.push(el("tr", {}, el("td", {}, arm), el("td", {}, metric),
          el("td", { class: "num" }, fmt(row.lift, 3)),
          el("td", { class: "num" }, `[${fmt(row.ci_low, 3)}, ${fmt(row.ci_high, 3)}]`),
          el("td", {}, interval(row)), el("td", { class: "num" }, fmt(row.p_value, 3))));
      }
    }
    const srm = f.srm ? `SRM p ${fmt(f.srm.p_value, 4)}` : "";
    const users = Object.entries(f.arms || {}).map(([a, t]) => `${a}: ${fmt(t.users, 0)} users`).join(", ");
    return el("div", {}, el("p", {}, [srm, users].filter(Boolean).join(" · ")),
      rows.length ? table(["arm", "metric", "lift", "interval", "vs 0", "p"], rows) : el("p", { class: "muted" }, "no comparison yet"));
  }

  function experimentCard(e) {
    const out = el("span", { class: "status-line", "data-testid": "action-result" });
    return el("div", { class: "card", "data-experiment": e.id },
      el("h3", {}, `${e.id} · ${e.kind} on layer ${e.layer} `, badge(ACTIVE.has(e.state) ? "ok" : "warn", e.state)),
      el("p", {}, `arms ${e.arms.map((a) => `${a.name} (${fmt(a.weight, 2)})`).join(", ")} · traffic ${fmt(e.traffic, 2)}`,
        e.stop_reason ? ` · stopped: ${e.stop_reason}` : ""),
      comparisons(e.analysis),
      el("p", {}, el("a", { href: e.report, target: "_blank" }, "report: the effect and its interval over time")),
      history(e.history || []),
      ACTIVE.has(e.state) ? actions("experiment", e.id, ["stop"], out) : null);
  }

  Cascade.pages.rollouts = async (root) => {
    const res = await call("GET", "/api/rollouts");
    if (!res.ok) { root.append(el("p", { class: "error" }, reason(res))); return; }
    const d = res.data;
    if (!d.reachable) {
      root.append(section("Rollouts and experiments",
        el("p", { class: "error", "data-testid": "unreachable" }, `rollouts service: ${d.error.kind}: ${d.error.detail}`)));
      return;
    }
    root.append(
      section("Rollouts", d.rollouts.length ? d.rollouts.map(rolloutCard)
        : el("p", { class: "muted" }, "no rollout yet (make rollout-demo starts one)")),
      section("Experiments", d.experiments.length ? d.experiments.map(experimentCard)
        : el("p", { class: "muted" }, "no experiment declared")));
  };
})();
