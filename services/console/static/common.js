// Shared by every page: the router, DOM and SVG builders, JSON calls, the token they carry.
"use strict";
const Cascade = (() => {
  const pages = {};
  let timer = null;

  // An element with attributes and children; text is always set as text, never as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function section(title, ...children) {
    return el("section", {}, el("h2", {}, title), ...children);
  }

  function table(headers, rows, attrs) {
    return el("table", attrs || {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }

  function badge(status, text) {
    return el("span", { class: `badge ${status}`, "data-status": status }, text || status);
  }

  function fmt(value, digits = 2) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return typeof value === "number" ? value.toFixed(digits) : String(value);
  }

  function when(ts) {
    return ts ? new Date(ts * 1000).toLocaleString() : "–";
  }

  function token() { return sessionStorage.getItem("cascade-token") || ""; }

  // JSON from the console's API: {ok, status, data}; a network failure is status 0.
  async function call(method, path, body) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    // Writes need the admin token; reads a token too where the platform protects them.
    if (token()) headers.Authorization = `Bearer ${token()}`;
    try {
      const resp = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await resp.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
      return { ok: resp.ok, status: resp.status, data };
    } catch (err) {
      return { ok: false, status: 0, data: { detail: `console unreachable: ${err}` } };
    }
  }

  // The readable reason of a failed call (FastAPI's 422 list names the field).
  function reason(res) {
    const d = res.data && res.data.detail;
    if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
    if (d && typeof d === "object") return `${d.service || ""} ${d.kind || ""}: ${d.detail || ""}`;
    return d ? String(d) : `HTTP ${res.status}`;
  }

  function every(seconds, work) {
    if (timer) clearInterval(timer);
    timer = setInterval(work, seconds * 1000);
  }

  // A page drawing render(data) of GET `path` now and every `seconds` (a failure as its reason).
  function polled(testid, path, render, seconds) {
    return async (root) => {
      const body = el("div", { "data-testid": testid });
      root.append(body);
      async function load() {
        const res = await call("GET", path);
        body.replaceChildren(...(res.ok ? render(res.data) : [el("p", { class: "error" }, reason(res))]));
      }
      await load();
      every(seconds, load);
    };
  }

  async function show() {
    const name = (location.hash || "#try").slice(1).split("?")[0];
    const page = pages[name] || pages.try;
    if (timer) { clearInterval(timer); timer = null; }
    document.querySelectorAll("nav a").forEach((a) =>
      a.classList.toggle("active", a.dataset.page === name));
    const root = document.getElementById("page");
    root.replaceChildren();
    root.dataset.state = "loading";
    root.dataset.page = name;
    await page(root);
    root.dataset.state = "loaded";
  }

  function start() {
    const input = document.getElementById("token");
    input.value = token();
    input.addEventListener("change", () => sessionStorage.setItem("cascade-token", input.value));
    window.addEventListener("hashchange", show);
    show();
  }

  return { pages, el, svg, section, table, badge, fmt, when, call, reason, every, polled, start };
})();
