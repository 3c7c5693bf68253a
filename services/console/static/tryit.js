// Try it: a user's list with its trace and waterfall; hide or like an item, see the next list.
"use strict";
(() => {
  const { el, svg, section, table, badge, fmt, call, reason } = Cascade;

  function waterfall(bars, total) {
    const end = Math.max(total || 0, ...bars.map((b) => b.start_ms + Math.max(b.ms, b.budget_ms || 0)));
    const W = 760, left = 150, row = 18, H = bars.length * row + 24;
    const x = (ms) => left + (ms / (end || 1)) * (W - left - 10);
    const parts = bars.map((b, i) => {
      const y = i * row + 4;
      const over = b.budget_ms !== null && b.budget_ms !== undefined && b.ms > b.budget_ms;
      return svg("g", { "data-bar": b.name },
        svg("text", { x: b.kind === "source" ? 16 : 4, y: y + 12 }, b.name),
        b.budget_ms ? svg("rect", { x: x(b.start_ms), y: y + 2, width: x(b.start_ms + b.budget_ms) - x(b.start_ms),
          height: row - 6, fill: "none", stroke: "#a0aec0", "stroke-dasharray": "3 2" }) : null,
        svg("rect", { x: x(b.start_ms), y: y + 2, width: Math.max(1, x(b.start_ms + b.ms) - x(b.start_ms)),
          height: row - 6, fill: over ? "#c53030" : (b.kind === "source" ? "#90cdf4" : "#2b6cb0") },
          svg("title", {}, `${b.name}: ${fmt(b.ms)} ms (budget ${fmt(b.budget_ms, 0)} ms)`)),
        svg("text", { x: x(b.start_ms + b.ms) + 4, y: y + 12 }, `${fmt(b.ms)} ms`));
    });
    const axis = svg("text", { x: left, y: H - 4 }, `0 … ${fmt(end, 1)} ms (dashed: budget)`);
    return svg("svg", { width: W, height: H, "data-testid": "waterfall" }, parts, axis);
  }

  function traceRow(item) {
    const t = item.trace || {};
    const kv = (obj) => Object.entries(obj || {}).map(([k, v]) => `${k} ${fmt(v, 4)}`).join(", ") || "–";
    return el("tr", { class: "trace", hidden: true },
      el("td", { colspan: 8 }, el("dl", {},
        el("dt", {}, "sources"), el("dd", {}, kv(t.sources)),
        el("dt", {}, "filters passed"), el("dd", {}, (t.filters_passed || []).join(", ") || "–"),
        el("dt", {}, "head scores"), el("dd", {}, kv(t.heads)),
        el("dt", {}, "ranker score"), el("dd", {}, fmt(t.ranker_score, 4)),
        el("dt", {}, "re-rank"), el("dd", {}, kv(t.rerank)),
        el("dt", {}, "exploration"),
        el("dd", {}, `${t.explored ? "explored slot" : "ranked"}, propensity ${fmt(t.propensity, 3)}`),
        t.team ? [el("dt", {}, "team"), el("dd", {}, t.team)] : null)));
  }

  function itemRows(view, act) {
    return view.items.flatMap((item, pos) => {
      const trace = traceRow(item);
      const row = el("tr", { "data-item": item.item_id },
        el("td", { class: "num" }, pos + 1),
        el("td", { class: "title" }, item.title || el("span", { class: "muted" }, `item ${item.item_id}`)),
        el("td", {}, (item.genres || []).join(", ")),
        el("td", { class: "num" }, item.year || "–"),
        el("td", { class: "num" }, fmt(item.score, 4)),
        el("td", {}, item.explored ? badge("warn", "explored") : ""),
        el("td", {}, el("button", { onclick: () => { trace.hidden = !trace.hidden; } }, "trace")),
        el("td", {},
          el("button", { "data-action": "hide", onclick: () => act("hide", item, pos) }, "hide"), " ",
          el("button", { "data-action": "like", onclick: () => act("like", item, pos) }, "like")));
      return [row, trace];
    });
  }

  function summary(view) {
    const a = view.answer;
    const models = Object.entries(a.model_versions || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
    return el("p", {},
      `request ${a.request_id} · variant ${a.variant} · ${a.cold_start} · `,
      a.degraded ? badge("bad", "degraded") : badge("ok", "complete"),
      ` · round trip ${fmt(view.round_trip_ms, 1)} ms · models ${models || "–"}`);
  }

  Cascade.pages.try = async (root) => {
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    const user = el("input", { name: "user_id", list: "users", value: params.get("user") || "1", size: 10 });
    const k = el("input", { name: "k", type: "number", min: 1, max: 100, value: 10, style: "width:5em" });
    const variant = el("input", { name: "variant", placeholder: "production", size: 10 });
    const users = el("datalist", { id: "users" }, [...Array(20).keys()].map((i) => el("option", { value: i + 1 })));
    const status = el("div", { class: "status-line", "data-testid": "status" });
    const out = el("div", { "data-testid": "result" });
    let last = null;

    async function load() {
      const q = new URLSearchParams({ user_id: user.value.trim(), k: k.value });
      if (variant.value.trim()) q.set("variant", variant.value.trim());
      const res = await call("GET", `/api/recommendations?${q}`);
      if (!res.ok) {
        out.replaceChildren(el("p", { class: "error", "data-testid": "error" }, reason(res)));
        return null;
      }
      last = res.data;
      const v = res.data;
      out.replaceChildren(
        section("The list", summary(v),
          v.answer.degraded_reasons.length
            ? el("ul", { class: "error", "data-testid": "degraded" }, v.answer.degraded_reasons.map((r) => el("li", {}, r)))
            : null,
          table(["#", "title", "genres", "year", "score", "", "", "post an event"], itemRows(v, act),
            { "data-testid": "items" }),
          el("p", { class: "muted" }, "removed by filters: ",
            Object.entries(v.removed_counts).map(([r, n]) => `${r} ${n}`).join(", ") || "none")),
        section("Stage timings", waterfall(v.waterfall, v.budget_total_ms)));
      return v;
    }

    async function act(type, item, pos) {
      status.textContent = `posting ${type} of ${item.item_id}…`;
      const res = await call("POST", "/api/events", {
        user_id: last.answer.user_id, item_id: item.item_id, type,
        request_id: last.answer.request_id, position: pos,
      });
      if (!res.ok) { status.textContent = `${type} refused: ${reason(res)}`; return; }
      status.textContent = `${type} of "${item.title}" accepted; reloading…`;
      // The event reaches the features through the broker and the ingest worker: reload
      // until a hidden item is gone (a like changes scores, so one reload shows it).
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const v = await load();
        if (!v || type !== "hide" || !v.items.some((x) => x.item_id === item.item_id)) break;
      }
      status.textContent = `${type} of "${item.title}" applied: this is the next list`;
    }

    const form = el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); load(); } },
      el("label", {}, "user id", user), users, el("label", {}, "k", k),
      el("label", {}, "variant", variant), el("button", { class: "primary", type: "submit" }, "Recommend"));
    root.append(section("Try it", form, status), out);
    await load();
  };
})();
