// Monitors: per ranking variant each feature's and head's PSI against the training reference
// (ok / warn / alert), and the last training-serving skew report's mismatch rate per feature.
"use strict";
(() => {
  const { el, svg, section, table, badge, fmt, when } = Cascade;

  // Reference (grey) beside served (blue) fractions per bin: what the PSI compares.
  function bins(f) {
    const n = f.reference.length;
    if (!n) return el("span", { class: "muted" }, "–");
    const W = 120, H = 22, w = W / n;
    const top = Math.max(...f.reference, ...f.served, 1e-9);
    const bar = (v, i, dx, fill) => svg("rect", { x: i * w + dx, y: H - (v / top) * H, width: w / 2 - 1,
      height: (v / top) * H, fill });
    return svg("svg", { width: W, height: H, "data-bins": f.name },
      f.reference.map((v, i) => bar(v, i, 0, "#a0aec0")),
      f.served.map((v, i) => bar(v, i, w / 2, "#2b6cb0")),
      svg("title", {}, "per bin: training reference (grey), served window (blue)"));
  }

  function figures(kind, rows) {
    return table([kind, "PSI", "status", "reference vs served"], rows.map((f) =>
      el("tr", { [`data-${kind}`]: f.name, "data-status": f.status },
        el("td", {}, f.name), el("td", { class: "num" }, fmt(f.psi, 3)),
        el("td", {}, badge(f.status)), el("td", {}, bins(f)))), { "data-testid": `${kind}-psi` });
  }

  function variant(v) {
    return el("section", { "data-variant": v.variant, "data-status": v.status },
      el("h2", {}, `Variant ${v.variant} `, badge(v.status)),
      el("p", {}, `model ${v.model || "–"} · window: ${fmt(v.window_requests, 0)} sampled requests, `,
        `${fmt(v.window_items, 0)} candidates`),
      v.reason ? el("p", { class: "muted", "data-testid": "reason" }, v.reason) : null,
      v.features.length ? figures("feature", v.features) : null,
      v.scores.length ? figures("head", v.scores) : null);
  }

  function skew(s) {
    if (!s.available) return section("Training-serving skew", el("p", { class: "muted" }, s.reason));
    const t = s.thresholds;
    const rows = s.features.map((f) => el("tr", { "data-skew": f.name, "data-status": f.status },
      el("td", {}, f.name), el("td", { class: "num" }, f.mismatch_rate === null ? "–" : `${fmt(100 * f.mismatch_rate, 2)} %`),
      el("td", { class: "num" }, fmt(f.compared, 0)), el("td", {}, f.status ? badge(f.status) : "")));
    return section("Training-serving skew (all variants)",
      el("p", {}, `last report ${when(s.finished_at)} over ${fmt(s.samples, 0)} sampled requests; `,
        `warn from ${fmt(100 * t.warn, 0)} %, alert from ${fmt(100 * t.alert, 0)} % mismatches`),
      table(["feature", "mismatch rate", "values compared", "status"], rows, { "data-testid": "skew" }),
      s.not_compared.length ? el("p", { class: "muted" }, `not compared: ${s.not_compared.join(", ")}`) : null);
  }

  function render(m) {
    const t = m.thresholds;
    const head = section(`Drift monitors of ${m.service}`,
      m.available ? null : el("p", { "data-testid": "unavailable" }, badge("unavailable"), " ", m.reason),
      el("p", {}, "PSI against the model's training reference: ", badge("ok", `ok < ${fmt(t.warn, 2)}`), " ",
        badge("warn", `warn ≥ ${fmt(t.warn, 2)}`), " ", badge("alert", `alert ≥ ${fmt(t.alert, 2)}`)),
      m.available ? el("p", { class: "muted" }, `1 in ${fmt(m.sample_every, 0)} requests sampled into a `,
        `${fmt(m.window_s / 60, 0)} min window; no PSI below ${fmt(m.min_requests, 0)} sampled requests`) : null,
      m.available && m.reason ? el("p", { class: "muted", "data-testid": "reason" }, m.reason) : null);
    return [head, ...m.variants.map(variant), skew(m.skew)];
  }

  Cascade.pages.monitors = Cascade.polled("monitors", "/api/monitors", render, 10);
})();
