// flowctl dashboard: draws the graph from /ui/api/graph, polls
// /ui/api/stats every second, streams /ui/api/tap for the component
// clicked. Read-only. Everything from the run (names, event data) is put
// in the page as text, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TAP_KEEP = 20;
const POLL_MS = 1000;

const state = {
  graph: null,      // GraphJSON
  nodes: new Map(), // name -> {g, rates, trouble, ...}
  edges: [],        // {e, qbg, qfill, qtext}
  rows: new Map(),  // name -> table row cells
  prev: null,       // previous stats sample
  last: null,       // last stats sample
  rates: new Map(), // name -> {in, out}
  samples: 0,
  selected: null,
  tap: null,        // AbortController of the tap stream
  tapEvents: [],
  tapDirty: false,
  mode: "run",      // "run" (flowctl run --http) or "server" (flowctl server --ui)
  pipeline: "",     // the pipeline shown, under the server
  gen: 0,           // bumped when the pipeline shown changes: late answers are dropped
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

// api is path with the pipeline shown, under the server.
function api(path, params) {
  const q = new URLSearchParams(params || {});
  if (state.mode === "server") q.set("pipeline", state.pipeline);
  const qs = q.toString();
  return qs ? path + "?" + qs : path;
}

function fmtRate(v) {
  if (v === undefined || !isFinite(v)) return "–";
  if (v >= 10000) return (v / 1000).toFixed(0) + "k";
  if (v >= 1000) return (v / 1000).toFixed(1) + "k";
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

function fmtCount(n) {
  if (n >= 10_000_000) return Math.round(n / 1e6) + "M";
  if (n >= 1_000_000) return (n / 1e6).toFixed(1) + "M";
  if (n >= 10_000) return Math.round(n / 1e3) + "k";
  return String(n);
}

function fmtElapsed(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (x) => String(x).padStart(2, "0");
  return (h ? h + ":" + pad(m) : m) + ":" + pad(sec);
}

// ---- graph ----

function drawGraph(g) {
  state.graph = g;
  state.nodes.clear();
  state.edges = [];
  $("pipeline").textContent = g.pipeline || "pipeline";
  document.title = (g.pipeline || "pipeline") + " · flowctl";
  const root = $("graph");
  root.replaceChildren();
  // The dead-letter edges run in a lane below every box.
  const lane = Math.max(0, ...g.nodes.map((n) => n.y + n.h)) + 22;
  const height = g.edges.some((e) => e.dead_letter) ? Math.max(g.height, lane + 24) : g.height;
  let dlLabelled = false;
  root.setAttribute("width", g.width);
  root.setAttribute("height", height);
  root.setAttribute("viewBox", "0 0 " + g.width + " " + height);

  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
  defs.appendChild(marker);
  root.appendChild(defs);

  const pos = new Map(g.nodes.map((n) => [n.name, n]));
  const edgeLayer = svg("g", { class: "edges" });
  const nodeLayer = svg("g", { class: "nodes" });
  root.append(edgeLayer, nodeLayer);

  // Edges into one node share its queue; spread their ends a little.
  const into = new Map();
  for (const e of g.edges) into.set(e.to, (into.get(e.to) || 0) + 1);
  const seen = new Map();
  for (const e of g.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const k = seen.get(e.to) || 0;
    seen.set(e.to, k + 1);
    const n = into.get(e.to);
    const x2 = b.x - 2, y2 = b.y + b.h / 2 + (n > 1 ? (k - (n - 1) / 2) * 14 : 0);
    const ge = svg("g", { class: "edge" + (e.dead_letter ? " dead-letter" : ""), "data-from": e.from, "data-to": e.to });
    let d, mx, my;
    if (e.dead_letter) {
      // Failures fall out of the bottom of a box into a lane below every
      // box, which leads to the dead-letter sink.
      const x1 = a.x + a.w / 2, y1 = a.y + a.h;
      d = `M${x1},${y1} L${x1},${lane - 8} Q${x1},${lane} ${x1 + 8},${lane} L${x2 - 24},${lane} C${x2 - 8},${lane} ${x2 - 12},${y2} ${x2},${y2}`;
      mx = x2 - 60;
      my = lane + 14;
      if (dlLabelled) my = null;
      dlLabelled = true;
        } else {
      const x1 = a.x + a.w, y1 = a.y + a.h / 2;
      const dx = Math.max(30, (x2 - x1) / 2);
      d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
      mx = (x1 + x2) / 2;
      my = (y1 + y2) / 2;
    }
    ge.appendChild(svg("path", { d, "marker-end": "url(#arrow)" }));
    const label = e.dead_letter ? "on error" : (e.types || []).join(", ");
    if (label && my !== null) ge.appendChild(svg("text", { x: mx, y: e.dead_letter ? my : my - 16, "text-anchor": "middle" }, label));
    const item = { e, qbg: null, qfill: null, qtext: null };
    if (!e.dead_letter) {
      item.qbg = svg("rect", { class: "qbg", x: mx - 20, y: my - 10, width: 40, height: 5, rx: 2 });
      item.qfill = svg("rect", { class: "qfill", x: mx - 20, y: my - 10, width: 0, height: 5, rx: 2 });
      item.qtext = svg("text", { class: "queue", x: mx, y: my + 15, "text-anchor": "middle" }, "");
      ge.append(item.qbg, item.qfill, item.qtext);
    }
    edgeLayer.appendChild(ge);
    state.edges.push(item);
  }

  for (const n of g.nodes) {
    const cls = ["node", "role-" + n.role];
    if (n.dead_letter) cls.push("dead-letter");
    const gn = svg("g", { class: cls.join(" "), "data-name": n.name, transform: `translate(${n.x},${n.y})`, tabindex: "0" });
    gn.appendChild(svg("title", {}, n.name));
    gn.appendChild(svg("rect", { class: "box", width: n.w, height: n.h, rx: 8 }));
    gn.appendChild(svg("circle", { class: "dot", cx: n.w - 12, cy: 13, r: 5 }));
    gn.appendChild(svg("text", { class: "name", x: 10, y: 18 }, clip(n.name, 22)));
    const role = n.dead_letter ? "dead letter" : n.role;
    gn.appendChild(svg("text", { class: "runs", x: 10, y: 33 }, clip(role + (n.runs ? " · " + n.runs : ""), 30)));
    const rates = svg("text", { class: "rates", x: 10, y: 51 }, "");
    const trouble = svg("text", { class: "trouble", x: 10, y: 67 }, "");
    gn.append(rates, trouble);
    gn.addEventListener("click", () => select(n.name));
    gn.addEventListener("keydown", (ev) => { if (ev.key === "Enter") select(n.name); });
    nodeLayer.appendChild(gn);
    state.nodes.set(n.name, { n, g: gn, rates, trouble });
  }
  buildTable(g);
  if (state.selected && !state.nodes.has(state.selected)) closePanel();
  else if (state.selected) markSelected(state.selected);
}

function clip(s, n) {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function buildTable(g) {
  const body = $("table").tBodies[0];
  body.replaceChildren();
  state.rows.clear();
  for (const n of g.nodes) {
    const tr = el("tr", { "data-name": n.name });
    const cells = {};
    for (const k of ["name", "role", "rate-in", "rate-out", "in", "out", "filtered", "errors", "dropped", "dead_lettered", "retries", "queue", "health", "restarts"]) {
      cells[k] = el("td", { class: k });
      tr.appendChild(cells[k]);
    }
    cells.name.textContent = n.name;
    cells.role.textContent = n.dead_letter ? "dead letter" : n.role;
    tr.addEventListener("click", () => select(n.name));
    body.appendChild(tr);
    state.rows.set(n.name, cells);
  }
}

// ---- live numbers ----

function applyStats(s) {
  const names = new Set(s.components.map((c) => c.name));
  const drawn = state.graph ? new Set(state.graph.nodes.map((n) => n.name)) : new Set();
  if (names.size !== drawn.size || [...names].some((n) => !drawn.has(n))) {
    // A reload changed the components: lay the graph out again.
    loadGraph();
  }
  const prev = state.last;
  state.prev = prev;
  state.last = s;
  state.samples++;
  const dt = prev ? s.elapsed_seconds - prev.elapsed_seconds : 0;
  const before = new Map(prev ? prev.components.map((c) => [c.name, c]) : []);

  const status = $("status");
  status.className = "status " + (s.finished ? "finished" : s.ready ? "ready" : "");
  status.textContent = s.finished ? "finished" : s.ready ? "running" : "starting";
  $("elapsed").textContent = fmtElapsed(s.elapsed_seconds);

  let emitted = 0, written = 0, dead = 0, dropped = 0;
  const byName = new Map();
  for (const c of s.components) {
    byName.set(c.name, c);
    const p = before.get(c.name);
    let rin, rout;
    if (p && dt > 0) {
      rin = Math.max(0, (c.in - p.in) / dt);
      rout = Math.max(0, (c.out - p.out) / dt);
      state.rates.set(c.name, { in: rin, out: rout });
    } else if (state.rates.has(c.name)) {
      ({ in: rin, out: rout } = state.rates.get(c.name));
    }
    // A source's rejects (malformed lines) were read too, as in the run's summary.
    if (c.role === "source") emitted += c.out + c.dead_lettered + c.dropped;
    if (c.role === "sink" && !c.dead_letter) written += c.out;
    dead += c.dead_lettered;
    dropped += c.dropped;
    updateNode(c, rin, rout, s.finished);
    updateRow(c, rin, rout);
  }
  for (const it of state.edges) {
    if (!it.qfill) continue;
    const c = byName.get(it.e.to);
    if (!c || !c.queue_capacity) { it.qtext.textContent = ""; continue; }
    const f = Math.min(1, c.queue_depth / c.queue_capacity);
    it.qfill.setAttribute("width", String(Math.max(f > 0 ? 1 : 0, 40 * f)));
    it.qfill.setAttribute("class", "qfill" + (f >= 0.9 ? " full" : f >= 0.5 ? " high" : ""));
    it.qtext.textContent = "queue " + fmtCount(c.queue_depth) + "/" + fmtCount(c.queue_capacity);
  }
  $("totals").textContent = fmtCount(emitted) + " in · " + fmtCount(written) + " written" +
    (dead ? " · " + fmtCount(dead) + " dead-lettered" : "") + (dropped ? " · " + fmtCount(dropped) + " dropped" : "");
  document.body.dataset.samples = String(state.samples);
  if (state.selected) updatePanel(byName.get(state.selected));
}

function updateNode(c, rin, rout, finished) {
  const it = state.nodes.get(c.name);
  if (!it) return;
  const h = c.health || "healthy";
  it.g.classList.toggle("degraded", h === "degraded");
  it.g.classList.toggle("unhealthy", h === "unhealthy");
  it.g.classList.toggle("finished", !!finished);
  const parts = [];
  if (c.role !== "source") parts.push("in " + fmtRate(rin) + "/s");
  if (c.role !== "sink") parts.push("out " + fmtRate(rout) + "/s");
  else parts.push("wrote " + fmtRate(rout) + "/s");
  it.rates.textContent = parts.join("  ");
  it.rates.dataset.rateIn = rin === undefined ? "" : String(rin);
  it.rates.dataset.rateOut = rout === undefined ? "" : String(rout);
  const trouble = [];
  if (c.errors) trouble.push(fmtCount(c.errors) + " err");
  if (c.dead_lettered) trouble.push(fmtCount(c.dead_lettered) + " dead-lettered");
  if (c.dropped) trouble.push(fmtCount(c.dropped) + " dropped");
  if (c.restarts) trouble.push("↻ " + c.restarts);
  if (h !== "healthy" && !trouble.length) trouble.push(h);
  it.trouble.textContent = trouble.join(" · ");
  it.g.querySelector("title").textContent = c.name + " (" + h + (c.reason ? ": " + c.reason : "") + ")";
}

function updateRow(c, rin, rout) {
  const cells = state.rows.get(c.name);
  if (!cells) return;
  const set = (k, v, bad) => { cells[k].textContent = v; cells[k].classList.toggle("bad", !!bad); };
  set("rate-in", c.role === "source" ? "–" : fmtRate(rin));
  set("rate-out", fmtRate(rout));
  cells["rate-out"].dataset.value = rout === undefined ? "" : String(rout);
  set("in", c.role === "source" ? "–" : fmtCount(c.in));
  set("out", fmtCount(c.out));
  set("filtered", fmtCount(c.filtered));
  set("errors", fmtCount(c.errors), c.errors > 0);
  set("dropped", fmtCount(c.dropped), c.dropped > 0);
  set("dead_lettered", fmtCount(c.dead_lettered), c.dead_lettered > 0);
  set("retries", fmtCount(c.retries));
  set("queue", c.queue_capacity ? fmtCount(c.queue_depth) + "/" + fmtCount(c.queue_capacity) : "–");
  const h = c.health || "healthy";
  cells.health.textContent = h;
  cells.health.className = "health health-" + h;
  set("restarts", String(c.restarts || 0), c.restarts > 0);
}

async function poll() {
  const gen = state.gen;
  if (state.mode !== "server" || state.pipeline) {
    try {
      const s = await getJSON(api("/ui/api/stats"));
      if (gen === state.gen) applyStats(s);
    } catch (err) {
      if (gen === state.gen) {
        const st = $("status");
        st.className = "status down";
        st.textContent = err.status === 401 ? "token refused: open the URL flowctl printed"
          : state.mode === "server" ? "not running" : state.last && state.last.finished ? "finished" : "disconnected";
        st.title = String(err.message || err);
      }
    }
  }
  setTimeout(poll, POLL_MS);
}

let loadingGraph = false;
async function loadGraph() {
  if (loadingGraph) return;
  loadingGraph = true;
  const gen = state.gen;
  try {
    const g = await getJSON(api("/ui/api/graph"));
    if (gen === state.gen) drawGraph(g);
  } catch (err) {
    $("status").className = "status down";
    $("status").textContent = String(err.message || err);
  } finally {
    loadingGraph = false;
  }
}

// ---- panel and tap ----

function markSelected(name) {
  for (const [k, it] of state.nodes) it.g.classList.toggle("selected", k === name);
  for (const tr of $("table").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.name === name);
}

function select(name) {
  state.selected = name;
  markSelected(name);
  $("panel").hidden = false;
  $("panel-title").textContent = name;
  const c = state.last && state.last.components.find((x) => x.name === name);
  updatePanel(c);
  startTap(name);
  if (state.mode === "server") loadLogs();
}

function closePanel() {
  state.selected = null;
  if (state.tap) state.tap.abort();
  state.tap = null;
  $("panel").hidden = true;
  markSelected(null);
}

function updatePanel(c) {
  const dl = $("panel-counters");
  dl.replaceChildren();
  if (!c) return;
  const r = state.rates.get(c.name) || {};
  const rows = [
    ["role", c.dead_letter ? "dead letter sink" : c.role],
    ["health", c.health || "healthy"],
    ["in", c.role === "source" ? "–" : c.in + " (" + fmtRate(r.in) + "/s)"],
    ["out", c.out + " (" + fmtRate(r.out) + "/s)"],
    ["filtered", c.filtered], ["errors", c.errors], ["dropped", c.dropped],
    ["dead-lettered", c.dead_lettered], ["retries", c.retries],
    ["queue", c.queue_capacity ? c.queue_depth + " / " + c.queue_capacity : "–"],
    ["batches", c.batches], ["restarts", c.restarts || 0],
  ];
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, String(v)));
  const reason = $("panel-reason");
  reason.hidden = !c.reason;
  reason.textContent = c.reason || "";
}

async function startTap(name) {
  if (state.tap) state.tap.abort();
  const ctl = new AbortController();
  state.tap = ctl;
  state.tapEvents = [];
  renderTap();
  const status = $("tap-status");
  status.textContent = "connecting…";
  try {
    const r = await fetch(api("/ui/api/tap", { point: name }), { signal: ctl.signal, cache: "no-store", credentials: "same-origin" });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      status.textContent = msg;
      return;
    }
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) onTapRecord(JSON.parse(line), status);
      }
    }
    if (state.tap === ctl) status.textContent = "ended";
  } catch (err) {
    if (state.tap === ctl && err.name !== "AbortError") status.textContent = "stopped: " + (err.message || err);
  }
}

function onTapRecord(rec, status) {
  if (rec.watching) status.textContent = "watching " + rec.watching;
  else if (rec.event) pushTap({ event: rec.event });
  else if (rec.dropped) pushTap({ note: rec.dropped + " events not shown: too many to follow" });
  else if (rec.end) status.textContent = "ended (" + rec.end + ")";
}

function pushTap(item) {
  state.tapEvents.unshift(item);
  if (state.tapEvents.length > TAP_KEEP) state.tapEvents.length = TAP_KEEP;
  if (!state.tapDirty) {
    state.tapDirty = true;
    setTimeout(renderTap, 200); // at most five repaints a second
  }
}

function renderTap() {
  state.tapDirty = false;
  const ol = $("tap-events");
  ol.replaceChildren();
  for (const it of state.tapEvents) {
    if (it.note) { ol.appendChild(el("li", { class: "note" }, it.note)); continue; }
    const e = it.event;
    const li = el("li", { class: "event" });
    const when = e.time ? new Date(e.time).toLocaleTimeString() : "";
    const meta = [when, e.type, e.id, e.subject].filter(Boolean).join("  ");
    li.appendChild(el("div", { class: "meta" }, meta));
    let data = e.data === undefined ? "" : JSON.stringify(e.data);
    if (data.length > 300) data = data.slice(0, 299) + "…";
    li.appendChild(el("div", { class: "data" }, data));
    ol.appendChild(li);
  }
}

// ---- under the server: pipelines, runs, logs ----

function showPipeline(name) {
  if (name === state.pipeline) return;
  state.pipeline = name;
  state.gen++;
  state.last = state.prev = null;
  state.rates.clear();
  state.graph = null;
  closePanel();
  $("graph").replaceChildren();
  $("table").tBodies[0].replaceChildren();
  $("runs-table").tBodies[0].replaceChildren();
  history.replaceState(null, "", "#" + encodeURIComponent(name));
  for (const li of $("pipelines").children) li.classList.toggle("selected", li.dataset.name === name);
  loadGraph();
  loadRuns();
}

async function loadPipelines() {
  try {
    const pls = await getJSON("/ui/api/pipelines");
    const ul = $("pipelines");
    ul.replaceChildren();
    for (const p of pls) {
      const li = el("li", { "data-name": p.name, title: p.last_error || "" });
      li.append(el("span", { class: "pname" }, p.name), el("span", { class: "phase " + p.phase }, p.phase + " r" + p.revision));
      li.classList.toggle("selected", p.name === state.pipeline);
      li.addEventListener("click", () => showPipeline(p.name));
      ul.appendChild(li);
    }
    if (!pls.length) ul.appendChild(el("li", { class: "empty" }, "none applied yet"));
    const want = decodeURIComponent(location.hash.slice(1));
    if (!state.pipeline && pls.length) showPipeline(pls.some((p) => p.name === want) ? want : pls[0].name);
  } catch (err) {
    $("status").className = "status down";
    $("status").textContent = "disconnected";
  }
}

function fmtTime(t) {
  return t ? new Date(t).toLocaleString() : "";
}

async function loadRuns() {
  if (!state.pipeline) return;
  const gen = state.gen;
  try {
    const runs = await getJSON(api("/ui/api/runs"));
    if (gen !== state.gen) return;
    const body = $("runs-table").tBodies[0];
    body.replaceChildren();
    for (const r of runs) {
      const tr = el("tr", { "data-run": String(r.id) });
      tr.append(el("td", {}, "#" + r.id), el("td", {}, "r" + r.revision), el("td", { class: "state-" + r.state }, r.state),
        el("td", {}, fmtTime(r.started_at)), el("td", {}, fmtTime(r.ended_at)), el("td", {}, r.reason || ""));
      body.appendChild(tr);
    }
  } catch (_) { /* shown by the status */ }
}

async function loadLogs() {
  const name = state.selected;
  if (!name || state.mode !== "server") return;
  const gen = state.gen;
  try {
    let lines = await getJSON(api("/ui/api/logs", { component: name, tail: "20" }));
    let whose = "last lines of this component";
    if (!lines.length) {
      // Built-in components seldom log: the run's own lines then.
      lines = await getJSON(api("/ui/api/logs", { tail: "20" }));
      whose = "none of this component; the pipeline's last lines";
    }
    if (gen !== state.gen || name !== state.selected) return;
    $("logs-whose").textContent = whose;
    const ol = $("logs");
    ol.replaceChildren();
    for (const l of lines.reverse()) {
      const who = l.component && l.component !== name ? l.component + ": " : "";
      ol.appendChild(el("li", { class: "log " + (l.level || "") }, new Date(l.time).toLocaleTimeString() + "  " + who + l.text));
    }
    if (!lines.length) ol.appendChild(el("li", {}, "no lines yet"));
  } catch (err) {
    $("logs").replaceChildren(el("li", {}, String(err.message || err)));
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closePanel(); });
  try {
    state.mode = (await getJSON("/ui/api/info")).mode;
  } catch (_) { /* an older run: the run dashboard */ }
  if (state.mode === "server") {
    $("sidebar").hidden = false;
    $("runs").hidden = false;
    $("logs-section").hidden = false;
    $("pipeline").textContent = "server";
    await loadPipelines();
    setInterval(loadPipelines, 3000);
    setInterval(loadRuns, 3000);
    setInterval(loadLogs, 2000);
  } else {
    await loadGraph();
  }
  poll();
});
