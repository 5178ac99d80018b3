/// The dashboard's single page: HTML, CSS and JavaScript in one string, no external assets, so it works offline.
///
/// It reads everything from the JSON API (`/api/runs`, `/api/runs/{name}/…`, `/api/diff`) and polls it every 5 s.
/// Charts are `<div class="chart" data-field="FIELD">` with a `<canvas>`; MoE heat maps are
/// `<div class="heatmap" data-layer="N">`. After the first successful render `<body data-ready="1">`.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nanodecoder dashboard</title>
<style>
  :root { --fg:#1d2330; --muted:#6b7385; --line:#dfe3ea; --bg:#f6f7f9; --card:#fff; --accent:#1f77b4; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:18px; align-items:center; padding:8px 16px; background:var(--card); border-bottom:1px solid var(--line); position:sticky; top:0; z-index:2; flex-wrap:wrap; }
  header h1 { font-size:15px; margin:0 8px 0 0; }
  header label { display:flex; gap:6px; align-items:center; color:var(--muted); }
  #updated { margin-left:auto; color:var(--muted); }
  #layout { display:grid; grid-template-columns: 470px 1fr; gap:14px; padding:14px; align-items:start; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
  h2 { font-size:13px; margin:0 0 8px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:3px 3px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; }
  td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
  #runs tr.focus td { background:#eef4fb; }
  #runs { font-size:12px; }
  #runs td.name { cursor:pointer; font-weight:600; max-width:135px; overflow:hidden; text-overflow:ellipsis; }
  .swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; vertical-align:-1px; }
  .status { font-size:11px; padding:1px 5px; border-radius:8px; background:#eceff3; }
  .status.running { background:#d7f5dd; color:#1b6b2b; }
  .status.finished { background:#dbe9fb; color:#1d4f91; }
  .status.stopped { background:#f6e7d2; color:#8a5311; }
  #charts { display:grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap:12px; }
  .chart { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:6px 8px 4px; }
  .chart h3, .heatmap h3 { font-size:12px; margin:0; display:flex; justify-content:space-between; gap:8px; }
  .chart .readout { font-weight:400; color:var(--muted); font-size:11px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  .chart canvas { width:100%; height:210px; display:block; }
  .heatmap { margin-bottom:10px; }
  .heatmap canvas { width:100%; display:block; }
  pre { margin:0; max-height:340px; overflow:auto; background:#fafbfc; border:1px solid var(--line); padding:8px; font:12px/1.35 ui-monospace, Menlo, Consolas, monospace; white-space:pre-wrap; }
  .panels { display:grid; grid-template-columns: 1fr 1fr; gap:12px; margin-top:12px; }
  .muted { color:var(--muted); }
  #errors { color:#a8271d; }
  #errors:empty { display:none; }
  .diff td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size:12px; white-space:normal; }
  .diff td.a { color:#a8271d; } .diff td.b { color:#1b6b2b; }
  section { margin-top:12px; }
</style>
</head>
<body>
<header>
  <h1>nanodecoder dashboard</h1>
  <label>smoothing <input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0.6"><span id="smoothingValue">0.60</span></label>
  <label><input id="logY" type="checkbox"> log scale</label>
  <label>x axis <select id="xAxis"><option value="step">step</option><option value="tokens">tokens</option></select></label>
  <label><input id="autoRefresh" type="checkbox" checked> auto-refresh 5 s</label>
  <span id="updated"></span>
</header>
<div id="layout">
  <aside>
    <div class="card">
      <h2>Runs</h2>
      <table id="runs"><thead><tr><th></th><th>name</th><th>status</th><th class="num">steps</th><th class="num">tokens</th><th class="num">best val</th><th class="num">updated</th></tr></thead><tbody></tbody></table>
      <p class="muted">Tick runs to overlay them; click a name for its samples, config and MoE load.</p>
      <div id="errors"></div>
    </div>
  </aside>
  <main>
    <div id="charts"></div>
    <section id="moeSection" class="card">
      <h2>MoE router load <span id="moeRun" class="muted"></span></h2>
      <div id="moe"></div>
    </section>
    <div class="panels">
      <div class="card"><h2>Samples <span id="samplesRun" class="muted"></span></h2><pre id="samples"></pre></div>
      <div class="card"><h2>Config <span id="configRun" class="muted"></span></h2><pre id="config"></pre></div>
    </div>
    <section class="card">
      <h2>Config diff</h2>
      <label>a <select id="diffA"></select></label> <label>b <select id="diffB"></select></label>
      <table class="diff" id="diff"></table>
    </section>
  </main>
</div>
<script>
"use strict";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const FIRST_FIELDS = ["train_loss", "val_loss", "eval_train_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "ms_per_iter"];
const state = { runs: [], checked: new Set(), focus: null, scalars: {}, errors: {}, colors: {}, started: false, diffA: null, diffB: null };
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

function esc(s) { return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c])); }
function colorOf(name) {
  if (!(name in state.colors)) state.colors[name] = PALETTE[Object.keys(state.colors).length % PALETTE.length];
  return state.colors[name];
}
function fmt(v) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(3).replace(/\.?0+$/, "");
  if (a >= 1e-3) return String(parseFloat(v.toPrecision(3)));
  return v.toExponential(1);
}
function age(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}
async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || ("HTTP " + response.status));
  return body;
}

// ---- runs table ----
function renderRuns() {
  const body = $("runs").tBodies[0];
  body.innerHTML = state.runs.map(r => `
    <tr data-run="${esc(r.name)}" class="${r.name === state.focus ? "focus" : ""}">
      <td><input type="checkbox" ${state.checked.has(r.name) ? "checked" : ""}></td>
      <td class="name" title="${esc(r.name)}"><span class="swatch" style="background:${colorOf(r.name)}"></span>${esc(r.name)}</td>
      <td><span class="status ${esc(r.status)}">${esc(r.status)}</span></td>
      <td class="num">${r.steps}${r.maxIters ? "/" + r.maxIters : ""}</td>
      <td class="num">${fmt(r.tokens)}</td>
      <td class="num">${r.bestValLoss == null ? "-" : r.bestValLoss.toFixed(4)}</td>
      <td class="num">${age(r.ageSeconds)}</td>
    </tr>`).join("");
  for (const row of body.rows) {
    const name = row.dataset.run;
    row.querySelector("input").addEventListener("change", (e) => {
      if (e.target.checked) state.checked.add(name); else state.checked.delete(name);
      refresh();
    });
    row.querySelector("td.name").addEventListener("click", () => { state.focus = name; refresh(); });
  }
  const errors = Object.entries(state.errors).filter(([, e]) => e).map(([n, e]) => `${esc(n)}: ${esc(e)}`);
  const warnings = state.runs.filter(r => r.warnings.length).map(r => `${esc(r.name)}: ${r.warnings.length} unreadable metrics line(s) skipped`);
  $("errors").innerHTML = errors.concat(warnings).map(t => `<div>${t}</div>`).join("");
}

// ---- scalar charts ----
function orderedFields() {
  const fields = new Set();
  for (const name of state.checked) {
    const s = state.scalars[name];
    if (s) for (const f of Object.keys(s.series)) fields.add(f);
  }
  const rest = [...fields].filter(f => !FIRST_FIELDS.includes(f) && f !== "tokens").sort();
  const result = FIRST_FIELDS.filter(f => fields.has(f)).concat(rest);
  if (fields.has("tokens") && $("xAxis").value === "step") result.push("tokens");
  return result;
}

// TensorBoard-style debiased exponential moving average.
function smooth(ys, weight) {
  if (weight <= 0) return ys;
  let last = 0, count = 0;
  return ys.map(y => {
    if (y === null || !isFinite(y)) return y;
    count += 1;
    last = last * weight + (1 - weight) * y;
    return last / (1 - Math.pow(weight, count));
  });
}

function seriesFor(name, field) {
  const s = state.scalars[name];
  if (!s || !s.series[field]) return null;
  let points = s.series[field];
  if ($("xAxis").value === "tokens") {
    const tokens = new Map((s.series.tokens || []).map(p => [p[0], p[1]]));
    points = points.filter(p => tokens.has(p[0])).map(p => [tokens.get(p[0]), p[1]]);
  }
  const logY = $("logY").checked;
  points = points.filter(p => p[1] !== null && isFinite(p[1]) && (!logY || p[1] > 0));
  const xs = points.map(p => p[0]);
  const raw = points.map(p => p[1]);
  return { name, xs, raw, smoothed: smooth(raw, parseFloat($("smoothing").value)) };
}

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; }
  const step0 = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

function drawChart(div, field) {
  const canvas = div.querySelector("canvas");
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 360, height = canvas.clientHeight || 210;
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const logY = $("logY").checked;
  const lines = [...state.checked].map(n => seriesFor(n, field)).filter(s => s && s.xs.length);
  div._lines = lines;
  if (!lines.length) { ctx.fillStyle = "#6b7385"; ctx.fillText("no data", 10, 20); return; }
  const ty = v => logY ? Math.log10(v) : v;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const l of lines) {
    for (const x of l.xs) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); }
    for (const y of l.raw) { y0 = Math.min(y0, ty(y)); y1 = Math.max(y1, ty(y)); }
  }
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { const pad = Math.abs(y0) * 0.05 || 1; y0 -= pad; y1 += pad; }
  const padY = (y1 - y0) * 0.04; y0 -= padY; y1 += padY;
  const L = 52, R = 18, T = 8, B = 22;
  const px = x => L + (x - x0) / (x1 - x0) * (width - L - R);
  const py = y => T + (1 - (ty(y) - y0) / (y1 - y0)) * (height - T - B);
  div._frame = { px, x0, x1, L, R, width };

  ctx.font = "10px system-ui, sans-serif"; ctx.strokeStyle = "#e6e9ef"; ctx.fillStyle = "#6b7385"; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const yTicks = logY ? niceTicks(y0, y1, 4).map(t => Math.pow(10, t)) : niceTicks(y0, y1, 4);
  for (const t of yTicks) {
    const y = py(t); if (y < T - 1 || y > height - B + 1) continue;
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(width - R, y); ctx.stroke();
    ctx.fillText(fmt(t), L - 4, y);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const t of niceTicks(x0, x1, 5)) {
    const x = px(t); if (x < L - 1 || x > width - R + 1) continue;
    ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, height - B); ctx.stroke();
    ctx.fillText(fmt(t), x, height - B + 4);
  }
  ctx.strokeStyle = "#b9bfca"; ctx.strokeRect(L, T, width - L - R, height - T - B);

  ctx.save(); ctx.beginPath(); ctx.rect(L, T, width - L - R, height - T - B); ctx.clip();
  const smoothing = parseFloat($("smoothing").value);
  for (const l of lines) {
    const color = colorOf(l.name);
    const sparse = l.xs.length <= 40;
    const path = (ys, alpha, w) => {
      ctx.globalAlpha = alpha; ctx.strokeStyle = color; ctx.lineWidth = w; ctx.beginPath();
      ys.forEach((y, i) => { const X = px(l.xs[i]), Y = py(y); i ? ctx.lineTo(X, Y) : ctx.moveTo(X, Y); });
      ctx.stroke();
    };
    if (smoothing > 0 && !sparse) { path(l.raw, 0.22, 1); path(l.smoothed, 1, 1.6); } else { path(l.raw, 1, 1.6); }
    if (sparse) {
      ctx.globalAlpha = 1; ctx.fillStyle = color;
      l.raw.forEach((y, i) => { ctx.beginPath(); ctx.arc(px(l.xs[i]), py(y), 2.5, 0, 2 * Math.PI); ctx.fill(); });
    }
  }
  ctx.restore(); ctx.globalAlpha = 1;
}

function nearest(xs, x) {
  let lo = 0, hi = xs.length - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] < x) lo = mid; else hi = mid; }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
}

function attachReadout(div) {
  const canvas = div.querySelector("canvas"), readout = div.querySelector(".readout");
  canvas.addEventListener("mousemove", (e) => {
    const f = div._frame, lines = div._lines;
    if (!f || !lines || !lines.length) return;
    const rect = canvas.getBoundingClientRect();
    const x = f.x0 + (e.clientX - rect.left - f.L) / (f.width - f.L - f.R) * (f.x1 - f.x0);
    readout.innerHTML = lines.map(l => {
      const i = nearest(l.xs, x);
      return `<span style="color:${colorOf(l.name)}">${esc(l.name)}</span> ${fmt(l.xs[i])}: ${fmt(l.smoothed[i])}`;
    }).join(" · ");
  });
  canvas.addEventListener("mouseleave", () => { readout.textContent = ""; });
}

function renderCharts() {
  const container = $("charts");
  const fields = orderedFields();
  const existing = new Map([...container.querySelectorAll(".chart")].map(d => [d.dataset.field, d]));
  for (const [field, div] of existing) if (!fields.includes(field)) div.remove();
  fields.forEach((field, index) => {
    let div = existing.get(field);
    if (!div) {
      div = document.createElement("div");
      div.className = "chart";
      div.dataset.field = field;
      div.innerHTML = `<h3><span>${esc(field)}</span><span class="readout"></span></h3><canvas></canvas>`;
      attachReadout(div);
    }
    if (container.children[index] !== div) container.insertBefore(div, container.children[index] || null);
    drawChart(div, field);
  });
  if (!fields.length) container.innerHTML = `<div class="card muted">Tick a run to plot its metrics.</div>`;
}

// ---- MoE heat maps: expert (rows) x step (columns), colour = tokens / mean tokens per expert ----
function loadColor(v) {
  // Blue below uniform load, white at uniform, red above; clamped at 0 and 2.
  const t = Math.max(0, Math.min(2, v)) - 1;
  const mix = (a, b, s) => Math.round(a + (b - a) * s);
  if (t < 0) { const s = -t; return `rgb(${mix(255, 33, s)},${mix(255, 102, s)},${mix(255, 172, s)})`; }
  return `rgb(${mix(255, 178, t)},${mix(255, 24, t)},${mix(255, 43, t)})`;
}

function drawHeatmap(canvas, layer) {
  const experts = Math.max(...layer.tokensPerExpert.map(r => r.length));
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600, rowH = Math.max(10, Math.min(22, 180 / experts));
  const L = 34, B = 18, T = 2, height = T + rowH * experts + B;
  canvas.style.height = height + "px";
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d"); ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const steps = layer.steps, plotW = width - L - 18;
  const columns = Math.max(1, Math.min(steps.length, Math.floor(plotW / 3)));  // >= 3 px per column
  const colW = plotW / columns;
  for (let c = 0; c < columns; c++) {
    const from = Math.floor(c * steps.length / columns), to = Math.max(from + 1, Math.floor((c + 1) * steps.length / columns));
    const sums = new Array(experts).fill(0);
    for (let i = from; i < to; i++) layer.tokensPerExpert[i].forEach((v, e) => { sums[e] += isFinite(v) ? v : 0; });
    const mean = sums.reduce((a, b) => a + b, 0) / experts;
    for (let e = 0; e < experts; e++) {
      ctx.fillStyle = loadColor(mean > 0 ? sums[e] / mean : 1);
      ctx.fillRect(L + c * colW, T + e * rowH, Math.ceil(colW), Math.ceil(rowH));
    }
  }
  ctx.font = "10px system-ui, sans-serif"; ctx.fillStyle = "#6b7385";
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (let e = 0; e < experts; e++) if (rowH >= 10 || e % 2 === 0) ctx.fillText("e" + e, L - 4, T + (e + 0.5) * rowH);
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  if (steps.length) {
    for (const t of niceTicks(steps[0], steps[steps.length - 1], 6)) {
      const x = L + (t - steps[0]) / Math.max(1, steps[steps.length - 1] - steps[0]) * plotW;
      if (x >= L && x <= L + plotW) ctx.fillText(fmt(t), x, T + rowH * experts + 3);
    }
  }
}

async function renderMoE() {
  const target = $("moe");
  $("moeRun").textContent = state.focus ? "— " + state.focus : "";
  if (!state.focus) { target.innerHTML = ""; return; }
  let payload;
  try { payload = await getJSON(`/api/runs/${enc(state.focus)}/moe`); }
  catch (e) { target.innerHTML = `<p class="muted">${esc(e.message)}</p>`; return; }
  if (!payload.layers.length) { target.innerHTML = `<p class="muted">No MoE layers logged (dense run).</p>`; return; }
  const legend = `<p class="muted">Colour: tokens routed to an expert ÷ the mean over experts —
    <span class="swatch" style="background:${loadColor(0)}"></span>0
    <span class="swatch" style="background:${loadColor(1)};border:1px solid #ccc"></span>1 (uniform)
    <span class="swatch" style="background:${loadColor(2)}"></span>≥2</p>`;
  target.innerHTML = payload.layers.map(l =>
    `<div class="heatmap" data-layer="${l.layer}"><h3><span>${esc(l.name)} — tokens per expert × step</span><span class="muted">${l.steps.length} steps</span></h3><canvas></canvas></div>`
  ).join("") + legend;
  target.querySelectorAll(".heatmap").forEach((div, i) => drawHeatmap(div.querySelector("canvas"), payload.layers[i]));
}

// ---- samples, config, diff ----
async function fillText(kind, pre, label) {
  $(label).textContent = state.focus ? "— " + state.focus : "";
  if (!state.focus) { $(pre).textContent = ""; return; }
  try {
    const payload = await getJSON(`/api/runs/${enc(state.focus)}/${kind}`);
    const el = $(pre);
    const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
    el.textContent = (payload.truncated ? "…\n" : "") + payload.text;
    if (kind === "samples" && atBottom) el.scrollTop = el.scrollHeight;
  } catch (e) { $(pre).textContent = e.message; }
}

function fillSelect(select, chosen) {
  const names = state.runs.map(r => r.name);
  const current = [...select.options].map(o => o.value);
  if (current.join("\n") !== names.join("\n")) select.innerHTML = names.map(n => `<option>${esc(n)}</option>`).join("");
  if (chosen && names.includes(chosen)) select.value = chosen;
  return select.value;
}

async function renderDiff() {
  const checked = [...state.checked];
  if (!state.diffA) state.diffA = checked[0] || (state.runs[0] && state.runs[0].name);
  if (!state.diffB) state.diffB = checked[1] || (state.runs.map(r => r.name).find(n => n !== state.diffA)) || state.diffA;
  state.diffA = fillSelect($("diffA"), state.diffA);
  state.diffB = fillSelect($("diffB"), state.diffB);
  const table = $("diff");
  if (!state.diffA || !state.diffB) { table.innerHTML = ""; return; }
  try {
    const d = await getJSON(`/api/diff?a=${enc(state.diffA)}&b=${enc(state.diffB)}`);
    table.innerHTML = `<tr><th>key</th><th>${esc(d.a)}</th><th>${esc(d.b)}</th></tr>` +
      (d.changes.length ? d.changes.map(c => `<tr><td>${esc(c.key)}</td><td class="a">${c.a == null ? "<i>unset</i>" : esc(c.a)}</td><td class="b">${c.b == null ? "<i>unset</i>" : esc(c.b)}</td></tr>`).join("")
        : `<tr><td colspan="3" class="muted">configs are identical</td></tr>`);
  } catch (e) { table.innerHTML = `<tr><td class="muted">${esc(e.message)}</td></tr>`; }
}

// ---- refresh loop ----
let refreshing = null;
async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      state.runs = await getJSON("/api/runs");
    } catch (e) {
      $("errors").textContent = "cannot list runs: " + e.message;
      return;
    }
    const names = state.runs.map(r => r.name);
    if (!state.started && state.runs.length) {
      // The fragment (#runs=a,b&focus=a) picks the initial selection; otherwise the latest run.
      const hash = new URLSearchParams(location.hash.slice(1));
      const wanted = (hash.get("runs") || "").split(",").filter(n => names.includes(n));
      (wanted.length ? wanted : [names[0]]).forEach(n => state.checked.add(n));
      state.focus = names.includes(hash.get("focus")) ? hash.get("focus") : [...state.checked][0];
      state.started = true;
    }
    for (const n of [...state.checked]) if (!names.includes(n)) state.checked.delete(n);
    if (state.focus && !names.includes(state.focus)) state.focus = names[0] || null;
    await Promise.all([...state.checked].map(async n => {
      try { state.scalars[n] = await getJSON(`/api/runs/${enc(n)}/scalars`); state.errors[n] = null; }
      catch (e) { state.errors[n] = e.message; }
    }));
    renderRuns();
    renderCharts();
    history.replaceState(null, "", "#runs=" + [...state.checked].map(enc).join(",") + (state.focus ? "&focus=" + enc(state.focus) : ""));
    await Promise.all([renderMoE(), fillText("samples", "samples", "samplesRun"), fillText("config", "config", "configRun"), renderDiff()]);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = "1";
  })();
  try { await refreshing; } finally { refreshing = null; }
}

$("smoothing").addEventListener("input", () => { $("smoothingValue").textContent = parseFloat($("smoothing").value).toFixed(2); renderCharts(); });
$("logY").addEventListener("change", renderCharts);
$("xAxis").addEventListener("change", renderCharts);
$("diffA").addEventListener("change", (e) => { state.diffA = e.target.value; renderDiff(); });
$("diffB").addEventListener("change", (e) => { state.diffB = e.target.value; renderDiff(); });
window.addEventListener("resize", () => { renderCharts(); renderMoE(); });
setInterval(() => { if ($("autoRefresh").checked) refresh(); }, 5000);
refresh();
</script>
</body>
</html>
"""#
}
