// Latency: p50 and p99 of the request, each step and each source over a window, against budget.
"use strict";
(() => {
  const { el, svg, section, table, badge, fmt, call, reason, every } = Cascade;

  function chart(rows) {
    const W = 760, left = 150, row = 22, H = rows.length * row + 26;
    const end = Math.max(1, ...rows.map((r) => Math.max(r.p99_ms || 0, r.budget_ms || 0)));
    const x = (ms) => left + (ms / end) * (W - left - 60);
    return svg("svg", { width: W, height: H, "data-testid": "latency-chart" },
      rows.map((r, i) => {
        const y = i * row + 4;
        return svg("g", { "data-row": r.name },
          svg("text", { x: r.kind === "step" ? 14 : (r.kind === "source" ? 24 : 4), y: y + 13 }, r.name),
          r.p99_ms !== null ? svg("rect", { x: left, y: y + 2, width: x(r.p99_ms) - left, height: row - 8,
            fill: r.over_budget ? "#feb2b2" : "#bee3f8" }, svg("title", {}, `p99 ${fmt(r.p99_ms)} ms`)) : null,
          r.p50_ms !== null ? svg("rect", { x: left, y: y + 5, width: x(r.p50_ms) - left, height: row - 14,
            fill: "#2b6cb0" }, svg("title", {}, `p50 ${fmt(r.p50_ms)} ms`)) : null,
          r.budget_ms ? svg("line", { x1: x(r.budget_ms), x2: x(r.budget_ms), y1: y, y2: y + row - 4,
            stroke: "#c53030", "stroke-width": 2 }) : null,
          svg("text", { x: W - 55, y: y + 13 }, r.count ? `${fmt(r.p99_ms, 1)} ms` : "no data"));
      }),
      svg("text", { x: left, y: H - 4 }, `dark: p50 · light: p99 · red line: budget · 0 … ${fmt(end, 0)} ms`));
  }

  Cascade.pages.latency = async (root) => {
    const windowSel = el("select", { name: "window" },
      [60, 300, 900].map((s) => el("option", { value: s, selected: s === 300 }, `last ${s / 60} min`)));
    const body = el("div", { "data-testid": "latency" });
    async function load() {
      const res = await call("GET", `/api/latency?window_s=${windowSel.value}`);
      if (!res.ok) { body.replaceChildren(el("p", { class: "error" }, reason(res))); return; }
      const d = res.data;
      const rows = d.rows.map((r) => el("tr", { "data-row": r.name },
        el("td", {}, r.kind), el("td", {}, r.name), el("td", { class: "num" }, fmt(r.count, 0)),
        el("td", { class: "num" }, fmt(r.p50_ms)), el("td", { class: "num" }, fmt(r.p99_ms)),
        el("td", { class: "num" }, fmt(r.budget_ms, 0)),
        el("td", {}, r.count ? (r.over_budget ? badge("bad", "p99 over") : badge("ok", "within")) : "")));
      body.replaceChildren(
        el("p", { class: "muted" }, `from ${d.source} over ${fmt(d.span_s, 0)} s`, d.note ? ` · ${d.note}` : ""),
        chart(d.rows),
        table(["kind", "name", "requests", "p50 ms", "p99 ms", "budget ms", ""], rows, { "data-testid": "latency-table" }));
    }
    windowSel.addEventListener("change", load);
    root.append(section("Latency against the budget", el("label", {}, "window ", windowSel), body));
    await load();
    every(5, load);
  };
})();
