// Health: services and dependencies up or down with the reason, consumers, freshness, models.
"use strict";
(() => {
  const { el, section, table, badge, fmt } = Cascade;

  function checks(c) {
    return Object.entries(c || {}).map(([name, v]) =>
      el("div", {}, badge(v.ok ? "ok" : (v.required ? "bad" : "warn"), name), " ", el("span", { class: "muted" }, v.reason)));
  }

  function render(h) {
    const services = h.services.map((s) => el("tr", { "data-service": s.name, "data-status": s.status },
      el("td", {}, s.name), el("td", {}, badge(s.status)), el("td", {}, s.reason || ""),
      el("td", {}, checks(s.checks)), el("td", { class: "muted" }, s.url)));
    const deps = h.dependencies.map((d) => el("tr", { "data-dependency": d.name, "data-status": d.status },
      el("td", {}, d.name), el("td", {}, badge(d.status)), el("td", {}, d.reason), el("td", { class: "muted" }, d.target)));
    const consumers = h.consumers.map((c) => el("tr", {},
      el("td", {}, c.service), el("td", {}, c.consumes), el("td", { class: "num" }, fmt(c.lag, 0)),
      el("td", { class: "num" }, fmt(c.failures_in_a_row, 0))));
    const models = h.models.map((m) => el("tr", {},
      el("td", {}, m.service), el("td", {}, m.slot), el("td", {}, m.alias), el("td", {}, m.model)));
    const holders = [...new Set(h.variants.flatMap((v) => Object.keys(v.held_by)))];
    const variants = h.variants.map((v) => el("tr", { "data-variant": v.name },
      el("td", {}, v.name), el("td", {}, Object.entries(v.models).map(([s, a]) => `${s}@${a}`).join(", ")),
      holders.map((s) => el("td", {}, v.held_by[s] ? badge("ok", "held") : badge("warn", "not held")))));
    const f = h.freshness;
    const errors = Object.entries(h.scrape.errors || {});
    return [
      section("Services", table(["service", "status", "reason", "checks", "address"], services, { "data-testid": "services" })),
      section("Dependencies", table(["dependency", "status", "reason", "where"], deps, { "data-testid": "dependencies" })),
      section("Consumers", consumers.length ? table(["service", "consumes", "lag (records)", "failures in a row"], consumers)
        : el("p", { class: "muted" }, "no consumer reports lag yet")),
      section("Feature freshness",
        el("p", {}, `event accepted → readable in Redis over the last ${fmt(f.window_s, 0)} s: `,
          `p50 ${fmt(f.p50_ms, 1)} ms, p99 ${fmt(f.p99_ms, 1)} ms (${fmt(f.events, 0)} events)`)),
      section("Models held (by alias)", models.length ? table(["service", "slot", "alias", "model"], models, { "data-testid": "models" })
        : el("p", { class: "muted" }, "no scrape has reported models yet")),
      section("Variants", table(["variant", "models", ...holders], variants, { "data-testid": "variants" }),
        h.variants_note ? el("p", { class: "error" }, h.variants_note) : null),
      el("p", { class: "muted" }, `metrics scraped ${fmt(h.scrape.age_s, 1)} s ago`,
        errors.length ? ` · not scraped: ${errors.map(([n, e]) => `${n} (${e})`).join("; ")}` : ""),
    ];
  }

  Cascade.pages.health = Cascade.polled("health", "/api/health", render, 5);
})();
