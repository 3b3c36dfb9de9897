// netmarl dashboard: one page for a run (map, links, nodes, learning), a sweep or an eSpark run.
// Data: /api/info once, then /api/stream (server-sent events: the server pushes what changed); the
// time slider asks /api/frame for older frames. window.netmarl holds the state (for tests and the curious).
"use strict";

const RUN = new URLSearchParams(location.search).get("run") || "";
const runQuery = (extra = "") => "?run=" + encodeURIComponent(RUN) + extra;
const state = {
  info: null, frame: null, count: 0, follow: true, selected: null, linkType: "",
  series: {}, events: [], rounds: [], pace: [], curves: {}, summary: null, status: null, updates: 0,
};
window.netmarl = state;

const $ = (id) => document.getElementById(id);
const RATIO_BINS = [
  [0.2, "#d62728", "<0.2"], [0.4, "#ff7f0e", "0.2-0.4"], [0.6, "#e6c229", "0.4-0.6"],
  [0.8, "#9acd32", "0.6-0.8"], [1.01, "#2ca02c", ">=0.8"],
];
const PLOT_CONFIG = { displaylogo: false, responsive: true };

function banner(text, kind = "") {
  const b = $("banner");
  b.hidden = !text;
  b.textContent = text || "";
  b.className = "banner " + kind;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined || v === "") return "-";
  const n = Number(v);
  return Number.isFinite(n) ? (Number.isInteger(n) ? String(n) : n.toPrecision(digits)) : escapeHtml(v);
}

async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ error: `${url}: answer is not JSON (HTTP ${r.status})` }));
  if (!r.ok || body.error) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// ------------------------------------------------------------------ start
async function start() {
  let info;
  try {
    info = await getJson("/api/info" + runQuery());
  } catch (err) {
    banner(`cannot show this folder: ${err.message} (trying again)`, "error");
    setTimeout(start, 3000);  // a folder being written (a run starting) may be readable in a moment
    return;
  }
  banner("");
  state.info = info;
  $("title").textContent = (RUN ? RUN + " of " : "") + (info.name || "");
  if (info.kind === "starting") {
    banner("the run is starting: waiting for its folder");
    setTimeout(start, 1000);
  } else if (info.kind === "sweep") {
    sweepPage();
  } else if (info.kind === "espark") {
    esparkPage();
  } else {
    runPage(info);
  }
}

// ------------------------------------------------------------------ a run
function runPage(info) {
  $("run-page").hidden = false;
  const ns = info.netsim || {};
  $("subtitle").textContent = [
    info.world && `world ${info.world}`, info.method && `method ${info.method}`,
    ns.mode && `radio ${ns.mode}`, ns.model && `channel ${ns.model}`, ns.range_m && `range ${ns.range_m} m`,
    ns.loss && `extra loss ${ns.loss}`,
  ].filter(Boolean).join(" · ");
  showStatus(info.status);
  drawMap();
  $("slider").addEventListener("input", onSlider);
  $("follow").addEventListener("change", () => {
    state.follow = $("follow").checked;
    if (state.follow) fetchFrame(-1);
  });
  $("link-type").addEventListener("change", () => { state.linkType = $("link-type").value; drawMap(); });
  $("node-select").addEventListener("change", () => selectNode($("node-select").value));  // by the user
  $("series-select").addEventListener("change", drawNodeChart);
  const source = new EventSource("/api/stream" + runQuery());
  source.onmessage = (ev) => onUpdate(JSON.parse(ev.data));
  source.onerror = () => banner("lost the connection to the dashboard server; retrying…", "error");
}

function showStatus(st) {
  state.status = st;
  if (!st) return;
  if (st.state === "running") banner("");
  else if (st.state === "ended") banner(`the run ended: ${st.status}`, st.status === "ok" ? "ok" : "error");
  else if (st.state === "stopped" || st.state === "error") banner(st.text, "error");
  else banner(st.text || st.state);
}

// an update only merges what came; drawing waits for the next animation frame, so a slow browser draws less
// often instead of falling behind (the events would queue up without end)
const dirty = new Set();
let drawPending = false;
function redraw(...what) {
  what.forEach((w) => dirty.add(w));
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    const todo = new Set(dirty);
    dirty.clear();
    if (todo.has("frame")) showFrame(state.frame);
    if (todo.has("series")) { fillNodeSelect(); drawNodeChart(); }
    if (todo.has("events")) drawEvents();
    if (todo.has("rounds")) drawRounds();
    if (todo.has("pace")) drawPace();
    if (todo.has("frame") || todo.has("curves")) drawDelivery();
  });
}

// a list the server sends in parts: {from, items} appends at from (0 after a reconnect: the whole list again)
const merge = (have, part) => have.slice(0, part.from).concat(part.items);

function onUpdate(u) {
  state.updates += 1;
  showStatus(u.status);
  if (u.map) { state.info.map = u.map; redraw("frame"); }
  for (const [node, byKey] of Object.entries(u.series || {})) {
    const mine = (state.series[node] = state.series[node] || {});
    for (const [key, part] of Object.entries(byKey)) {
      mine[key] = part.from === 0 ? part.points : (mine[key] || []).concat(part.points);
    }
  }
  if (u.series) redraw("series");
  if (u.events) { state.events = merge(state.events, u.events); redraw("events"); }
  if (u.rounds) { state.rounds = merge(state.rounds, u.rounds); redraw("rounds"); }
  if (u.pace) { state.pace = u.pace.from === 0 ? u.pace.points : state.pace.concat(u.pace.points); redraw("pace"); }
  if (u.curves) { state.curves = u.curves; redraw("curves"); }
  if (u.summary && !state.summary) {
    state.summary = u.summary;
    $("summary-box").hidden = false;
    $("summary").textContent = JSON.stringify(u.summary, null, 1);
  }
  state.count = u.count || 0;
  const slider = $("slider");
  slider.max = Math.max(0, state.count - 1);
  if (u.frame && state.follow) {
    slider.value = slider.max;
    state.frame = u.frame;
    redraw("frame");
  }
}

let sliderTimer = null;
function onSlider() {
  state.follow = false;
  $("follow").checked = false;
  clearTimeout(sliderTimer);
  sliderTimer = setTimeout(() => fetchFrame(Number($("slider").value)), 80);
}

async function fetchFrame(i) {
  try {
    const got = await getJson("/api/frame" + runQuery(`&i=${i}`));
    showFrame(got.frame);
  } catch (err) {
    banner(`frame ${i}: ${err.message}`, "error");
  }
}

function showFrame(frame) {
  state.frame = frame;
  const t = frame.t_sim !== undefined ? `sim ${fmt(frame.t_sim, 5)} s` : "";
  const when = new Date(frame.wall * 1000).toLocaleTimeString();
  const pace = frame.steps_per_s !== undefined ? ` · ${fmt(frame.steps_per_s, 3)} steps/s` : "";
  $("frame-label").textContent = `step ${frame.world_step} · ${t} · ${when}${pace}`;
  const types = new Set(frame.links.map((l) => l[2]));
  const sel = $("link-type");
  for (const ty of types) {
    if (![...sel.options].some((o) => o.value === ty)) sel.add(new Option(ty, ty));
  }
  fillNodeSelect();
  drawMap();
  drawNode();
}

// the map: lanes (or the ring / chain), links coloured by delivery ratio, agents, the selected one's range
function baseTraces() {
  const m = (state.info && state.info.map) || { kind: "none" };
  if (m.kind === "lanes") {
    return [{ type: "scatter", mode: "lines", x: m.lanes[0], y: m.lanes[1], line: { color: "#c8c8c8", width: 1 },
      hoverinfo: "skip", name: "lanes", showlegend: false }];
  }
  if (m.kind === "chain") {
    const n = m.echelons || 1;
    return [{ type: "scatter", mode: "lines+text", x: [100, -100 * n], y: [0, 0], text: ["customers", "super vendor"],
      textposition: "top center", line: { color: "#c8c8c8", width: 6 }, hoverinfo: "skip", name: "chain", showlegend: false }];
  }
  return [];
}

function linkTraces(frame) {
  const pos = frame.positions || {};
  const pairs = {};
  for (const [src, dst, type, attempts, delivered] of frame.links || []) {
    if (state.linkType && type !== state.linkType) continue;
    if (!pos[src] || !pos[dst]) continue;
    const key = src < dst ? src + "\u0000" + dst : dst + "\u0000" + src;
    const cell = (pairs[key] = pairs[key] || [src, dst, 0, 0]);
    cell[2] += attempts;
    cell[3] += delivered;
  }
  return RATIO_BINS.map(([upper, colour, label], b) => {
    const x = [], y = [], text = [];
    for (const [src, dst, attempts, delivered] of Object.values(pairs)) {
      const ratio = attempts ? delivered / attempts : 0;
      const lower = b ? RATIO_BINS[b - 1][0] : -1;
      if (ratio < lower || ratio >= upper) continue;
      x.push(pos[src][0], pos[dst][0], null);
      y.push(pos[src][1], pos[dst][1], null);
      const hover = escapeHtml(`${src} – ${dst}: ${delivered}/${attempts} delivered (${ratio.toFixed(2)})`);
      text.push(hover, hover, null);
    }
    return { type: "scatter", mode: "lines", x, y, text, hoverinfo: "text", line: { color: colour, width: 1.5 },
      name: `links ${label}`, meta: { ratioBin: label, colour, links: x.length / 3 }, showlegend: false, opacity: 0.8 };
  });
}

function nodeHover(id, rec) {
  id = escapeHtml(id);
  if (!rec) return id;
  return `${id} (${escapeHtml(rec.kind)})<br>heartbeat ${fmt(rec.age_s, 2)} s ago<br>restarts ${fmt(rec.restarts)}` +
    (rec.down ? "<br><b>down</b>" : "") + (rec.host ? `<br>host ${escapeHtml(rec.host)}` : "");
}

// the map's extent: the lanes (or ring, chain) and the agents, not the range circle around the selected one
function mapBounds() {
  const m = (state.info && state.info.map) || {};
  const xs = [], ys = [];
  if (m.kind === "lanes") {
    for (const v of m.lanes[0]) if (v !== null) xs.push(v);
    for (const v of m.lanes[1]) if (v !== null) ys.push(v);
  } else if (m.kind === "ring") {
    const r = (m.radius_m || 40) + (m.width_m || 0);
    xs.push(-r, r); ys.push(-r, r);
  }
  for (const [x, y] of Object.values((state.frame && state.frame.positions) || {})) { xs.push(x); ys.push(y); }
  if (!xs.length) return [undefined, undefined];
  const pad = (lo, hi) => { const d = Math.max(10, 0.06 * (hi - lo)); return [lo - d, hi + d]; };
  return [pad(Math.min(...xs), Math.max(...xs)), pad(Math.min(...ys), Math.max(...ys))];
}

function drawMap() {
  const frame = state.frame;
  const traces = baseTraces();
  const shapes = [];
  const m = (state.info && state.info.map) || {};
  if (m.kind === "ring") {
    const r = m.radius_m || 40;
    shapes.push({ type: "circle", x0: -r, y0: -r, x1: r, y1: r, line: { color: "#c8c8c8", width: Math.max(2, m.width_m || 2) } });
  }
  if (frame) {
    traces.push(...linkTraces(frame));
    const nodes = frame.nodes || {};
    const ids = Object.keys(frame.positions || {});
    traces.push({
      type: "scatter", mode: "markers+text", name: "agents", showlegend: false,
      x: ids.map((i) => frame.positions[i][0]), y: ids.map((i) => frame.positions[i][1]),
      text: ids.map(escapeHtml), textposition: "top center", textfont: { size: 10 }, customdata: ids,
      hovertext: ids.map((i) => nodeHover(i, nodes[i])), hoverinfo: "text",
      marker: {
        size: ids.map((i) => (i === state.selected ? 14 : 9)),
        color: ids.map((i) => (nodes[i] && nodes[i].down ? "#999" : nodes[i] && nodes[i].restarts ? "#9467bd" : "#1f77b4")),
        line: { color: "#fff", width: 1 },
      },
    });
    const sel = state.selected && frame.positions && frame.positions[state.selected];
    const r = state.info && state.info.range_m;
    if (sel && r) {
      shapes.push({ type: "circle", x0: sel[0] - r, y0: sel[1] - r, x1: sel[0] + r, y1: sel[1] + r,
        line: { color: "#1f77b4", width: 1, dash: "dot" } });
    }
  }
  const [xr, yr] = mapBounds();
  const layout = {
    margin: { l: 40, r: 10, t: 10, b: 30 }, uirevision: "map", hovermode: "closest", shapes,
    xaxis: { zeroline: false, showgrid: false, range: xr }, yaxis: { zeroline: false, showgrid: false, scaleanchor: "x", range: yr },
    annotations: frame ? [] : [{ text: "waiting for the run's first frame", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
  };
  Plotly.react("map", traces, layout, PLOT_CONFIG).then((gd) => {
    if (!gd._netmarlClick) {
      gd._netmarlClick = true;
      gd.on("plotly_click", (ev) => {
        const p = ev.points && ev.points[0];
        if (p && p.customdata) selectNode(p.customdata);
      });
    }
  });
}

// ------------------------------------------------------------------ one node
function fillNodeSelect() {
  const sel = $("node-select");
  const names = new Set([...Object.keys((state.frame && state.frame.nodes) || {}), ...Object.keys(state.series)]);
  const have = new Set([...sel.options].map((o) => o.value));
  for (const n of [...names].sort()) if (!have.has(n)) sel.add(new Option(n, n));
  const agents = Object.keys((state.frame && state.frame.positions) || {}).sort();
  if (!state.userSelected && sel.options.length && (!state.selected || (agents.length && !agents.includes(state.selected)))) {
    selectNode(agents[0] || sel.options[0].value, false);  // an agent, once the map has them
  }
}

function selectNode(id, byUser = true) {
  state.selected = id;
  state.userSelected = state.userSelected || byUser;
  $("node-select").value = id;
  const keys = Object.keys(state.series[id] || {}).sort();
  const sel = $("series-select");
  sel.innerHTML = "";
  for (const k of keys) sel.add(new Option(k, k));
  const preferred = keys.find((k) => /return|score/.test(k)) || keys.find((k) => /loss/.test(k)) || keys[0];
  if (preferred) sel.value = preferred;
  drawNode();
  drawNodeChart();
  drawMap();
}

function drawNode() {
  const id = state.selected;
  const frame = state.frame || {};
  const rec = (frame.nodes || {})[id];
  $("health").innerHTML = rec
    ? [["kind", rec.kind], ["heartbeat", `${fmt(rec.age_s, 2)} s ago`], ["restarts", rec.restarts],
       ["state", rec.down ? "down" : "up"], ["host", rec.host]]
        .map(([k, v]) => `<tr><td>${k}</td><td>${escapeHtml(v)}</td></tr>`).join("")
    : `<tr><td>no health record for ${escapeHtml(id || "-")}</td></tr>`;
  const window = {};
  for (const [src, dst, type, attempts, delivered] of frame.links || []) {
    if (src === id) (window[type] = window[type] || [0, 0])[0] += attempts;
    if (dst === id) (window[type] = window[type] || [0, 0])[1] += delivered;
  }
  const total = (frame.traffic || {})[id] || {};
  const types = [...new Set([...Object.keys(total), ...Object.keys(window)])].sort();
  $("traffic").innerHTML = "<tr><th>type</th><th>sent</th><th>received</th><th>last s: sent</th><th>received</th></tr>" +
    types.map((t) => `<tr><td>${escapeHtml(t)}</td><td>${fmt((total[t] || [])[0])}</td><td>${fmt((total[t] || [])[1])}</td>` +
      `<td>${fmt((window[t] || [])[0])}</td><td>${fmt((window[t] || [])[1])}</td></tr>`).join("");
}

function drawNodeChart() {
  const key = $("series-select").value;
  const points = ((state.series[state.selected] || {})[key]) || [];
  Plotly.react("node-chart", [{ type: "scatter", mode: "lines+markers", marker: { size: 3 },
    x: points.map((p) => p[0]), y: points.map((p) => p[1]), name: escapeHtml(key) }],
  { margin: { l: 50, r: 10, t: 24, b: 36 }, title: { text: escapeHtml(`${state.selected || ""}: ${key || "no records yet"}`), font: { size: 12 } },
    xaxis: { title: { text: "episode / epoch / round / record" } }, uirevision: key }, PLOT_CONFIG);
}

// ------------------------------------------------------------------ the run
function drawPace() {
  const t0 = state.pace.length ? state.pace[0][0] : 0;
  Plotly.react("pace", [{ type: "scatter", mode: "lines", x: state.pace.map((p) => p[0] - t0), y: state.pace.map((p) => p[1]) }],
    { margin: { l: 50, r: 10, t: 24, b: 36 }, title: { text: "world steps/s", font: { size: 12 } },
      xaxis: { title: { text: "wall time [s]" } } }, PLOT_CONFIG);
}

function drawDelivery() {
  const bins = (state.frame && state.frame.bins) || {};
  const traces = [];
  Object.entries(bins).forEach(([type, cells], i) => {
    const pts = cells.filter((c) => c[1] >= 5);
    const colour = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"][i % 5];
    traces.push({ type: "scatter", mode: "markers", name: escapeHtml(`${type} measured`), x: pts.map((c) => c[0]),
      y: pts.map((c) => c[2] / c[1]), marker: { color: colour, size: 6 } });
    const curve = state.curves[type];
    if (curve) traces.push({ type: "scatter", mode: "lines", name: escapeHtml(`${type} model`), x: curve[0], y: curve[1], line: { color: colour } });
  });
  Plotly.react("delivery", traces, { margin: { l: 50, r: 10, t: 24, b: 36 }, title: { text: "delivery ratio vs distance (all so far)", font: { size: 12 } },
    xaxis: { title: { text: "distance at send time [m]" } }, yaxis: { range: [-0.03, 1.03] }, legend: { font: { size: 10 } } }, PLOT_CONFIG);
}

function drawEvents() {
  $("events").innerHTML = state.events.slice(-200).map((e) => {
    const when = new Date((e.wall || 0) * 1000).toLocaleTimeString();
    const rest = Object.entries(e).filter(([k]) => !["wall", "node", "event"].includes(k))
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v).slice(0, 120) : v}`).join(" ");
    const bad = /fail|refused|dropped|restart/.test(e.event || "");
    return `<li class="${bad ? "bad" : ""}">${when} <b>${escapeHtml(e.event || "?")}</b> ${escapeHtml(rest)}</li>`;
  }).join("") || "<li>none</li>";
}

function drawRounds() {
  const rows = state.rounds.slice(-30);
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r).filter((k) => !["wall", "node", "final"].includes(k) && typeof r[k] !== "object")))].slice(0, 10);
  $("rounds").innerHTML = `<tr>${keys.map((k) => `<th>${escapeHtml(k)}</th>`).join("")}</tr>` +
    rows.map((r) => `<tr>${keys.map((k) => `<td>${fmt(r[k])}</td>`).join("")}</tr>`).join("");
}

// ------------------------------------------------------------------ pages of a table (a sweep, an eSpark run)
// show the page, fetch its table and draw it; again after the delay draw() returns (sooner while it fills in)
async function tablePage(kind, subtitle, draw) {
  $(`${kind}-page`).hidden = false;
  $("subtitle").textContent = subtitle;
  let delay = 3000;
  try {
    delay = draw(await getJson(`/api/${kind}`));
  } catch (err) {
    banner(`${kind}: ${err.message} (trying again)`, "error");
  }
  setTimeout(() => tablePage(kind, subtitle, draw), delay);
}

const sweepPage = () => tablePage("sweep", "sweep", showSweep);
const esparkPage = () => tablePage("espark", "eSpark: LLM-written exploration functions, an evolutionary loop", showEspark);

function showSweep(table) {
  state.sweep = table;
  const metric = $("sweep-metric"), axis = $("sweep-axis");
  if (!metric.options.length) {
    for (const m of table.metrics) metric.add(new Option(m, m));
    for (const a of table.axes) axis.add(new Option(a, a));
    const preferred = table.metrics.find((m) => /delivery_ratio|return|score/.test(m));
    if (preferred) metric.value = preferred;
    metric.addEventListener("change", () => drawSweep(state.sweep));
    axis.addEventListener("change", () => drawSweep(state.sweep));
  }
  drawSweep(table);
  const running = table.rows.some((r) => r.status === "running") || !table.axes.length;
  banner(running ? "the sweep is under way: its table fills in as points finish" : "");
  return running ? 2000 : 10000;
}

function drawSweep(table) {
  const m = $("sweep-metric").value, a = $("sweep-axis").value;
  const others = table.axes.filter((k) => k !== a);
  const groups = {};
  for (const r of table.rows) {
    if (!a || r[m] === undefined || r[m] === "") continue;
    const label = others.map((k) => `${k}=${r[k]}`).join(", ") || m;
    (groups[label] = groups[label] || []).push([r[a], Number(r[m]), r.point]);
  }
  const traces = Object.entries(groups).map(([label, pts]) => ({
    type: "scatter", mode: "lines+markers", name: escapeHtml(label), x: pts.map((p) => p[0]), y: pts.map((p) => p[1]), customdata: pts.map((p) => p[2]),
  }));
  Plotly.react("sweep-chart", traces, { margin: { l: 60, r: 10, t: 24, b: 40 }, xaxis: { title: { text: escapeHtml(a) } }, yaxis: { title: { text: escapeHtml(m) } },
    title: { text: m ? escapeHtml(`${m} against ${a}`) : "no finished point yet", font: { size: 13 } } }, PLOT_CONFIG).then((gd) => {
    if (!gd._netmarlClick) {
      gd._netmarlClick = true;
      gd.on("plotly_click", (ev) => { const p = ev.points && ev.points[0]; if (p && p.customdata) location.search = "?run=" + encodeURIComponent(p.customdata); });
    }
  });
  const cols = ["point", ...table.axes, "status", m].filter((c, i, all) => c && all.indexOf(c) === i);
  $("sweep-table").innerHTML = `<tr>${cols.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr>` + table.rows.map((r) =>
    `<tr class="sweep-point">${cols.map((c) => c === "point"
      ? `<td>${r.point ? `<a href="?run=${encodeURIComponent(r.point)}">${escapeHtml(r.point)}</a>` : "-"}</td>`
      : `<td>${fmt(r[c])}</td>`).join("")}</tr>`).join("");
}

// ------------------------------------------------------------------ an eSpark run
function showEspark(table) {
  state.espark = table;
  banner("");
  const ok = table.candidates.filter((c) => c.accepted && c.score !== null);
  const bad = table.candidates.filter((c) => !(c.accepted && c.score !== null));
  Plotly.react("espark-chart", [
    { type: "scatter", mode: "markers", name: "candidate G", x: ok.map((c) => c.iteration), y: ok.map((c) => c.score), text: ok.map((c) => escapeHtml(c.key)) },
  ], { margin: { l: 60, r: 10, t: 24, b: 40 }, xaxis: { title: { text: "iteration" }, dtick: 1 }, yaxis: { title: { text: "G" } },
    title: { text: `candidates: ${ok.length} scored, ${bad.length} rejected`, font: { size: 13 } } }, PLOT_CONFIG);
  $("espark-runs").innerHTML = table.runs.map((r) => `<li><a href="?run=${encodeURIComponent(r)}">${escapeHtml(r)}</a></li>`).join("");
  const cols = ["key", "iteration", "score", "accepted", "cause", "pruned_fraction", "message"];
  $("espark-table").innerHTML = `<tr>${cols.map((c) => `<th>${c}</th>`).join("")}</tr>` + table.candidates.map((c) =>
    `<tr>${cols.map((k) => k === "key" && c.run ? `<td><a href="?run=${encodeURIComponent(c.run)}">${escapeHtml(c.key)}</a></td>` : `<td>${fmt(c[k])}</td>`).join("")}</tr>`).join("");
  return 5000;
}

start();
