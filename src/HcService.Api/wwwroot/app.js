// HcService web UI: the runs table and the run page, built on the public REST API and the event stream only (what any
// client can get). Charts by uPlot (vendored under vendor/uplot). No build step, no framework.
"use strict";

const view = document.getElementById("view");
const KEY = "hc-api-key";
let cleanup = [];   // what the current view must stop (timers, event streams, charts) when the route changes

// ---- the API ------------------------------------------------------------------------------------------------------
const key = () => sessionStorage.getItem(KEY);
/** The headers with the key as bearer token when one is in use: every read and write of the UI sends it. */
const withKey = (headers = {}) => key() ? { ...headers, Authorization: `Bearer ${key()}` } : headers;

async function api(path, options = {}) {
  const headers = withKey({ Accept: "application/json", ...(options.headers || {}) });
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { if (response.ok) throw new Error(`${response.status}: the answer is not JSON`); }
  if (!response.ok) {
    const detail = body && (body.detail || body.title) || response.statusText;
    const fields = body && body.errors ? " " + Object.entries(body.errors).map(([f, m]) => `${f}: ${m.join("; ")}`).join(" | ") : "";
    throw new Error(`${response.status} ${detail}${fields}`);
  }
  return body;
}

/**
 * Server-sent events over fetch, so that the stream carries the key as the API's other reads do (EventSource cannot send
 * a header, and a service whose reads need a key would refuse it). Reconnects after a dropped connection with
 * Last-Event-ID, which the API resumes from with no gap and no duplicate. handlers: { eventName: data => ... }.
 * Returns { close() }.
 */
function eventStream(path, handlers) {
  const abort = new AbortController();
  let lastId = null, closed = false;
  const dispatch = block => {
    let event = "message", data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon), value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value; else if (field === "data") data.push(value); else if (field === "id") lastId = value;
    }
    if (data.length && handlers[event]) handlers[event](data.join("\n"));
  };
  (async () => {
    while (!closed) {
      try {
        const headers = withKey({ Accept: "text/event-stream" });
        if (lastId != null) headers["Last-Event-ID"] = lastId;
        const response = await fetch(path, { headers, signal: abort.signal });
        if (!response.ok) { handlers.error?.(`${response.status} ${response.statusText}`); if (response.status < 500) return; }
        else {
          handlers.open?.();
          const reader = response.body.getReader(), decoder = new TextDecoder();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) { dispatch(buffer.slice(0, end)); buffer = buffer.slice(end + 2); }
          }
        }
      } catch (e) { if (closed) return; }
      if (!closed) await new Promise(resolve => setTimeout(resolve, 2000));   // the server ended or dropped the stream
    }
  })();
  return { close() { closed = true; abort.abort(); } };
}

/** An image from the API, fetched with the key (an <img src> cannot send one). */
async function authImage(img, path) {
  const response = await fetch(path, { headers: withKey() });
  if (!response.ok) { img.alt = `${img.alt}: ${response.status} ${response.statusText}`; return; }
  const url = URL.createObjectURL(await response.blob());
  img.onload = img.onerror = () => URL.revokeObjectURL(url);
  img.src = url;
}

// ---- formatting ---------------------------------------------------------------------------------------------------
/** A number, or null for what the API sends for a diverged value ("NaN", "Infinity") and for absent values. */
const num = v => typeof v === "number" && isFinite(v) ? v : null;
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fixed = (v, d = 4) => num(v) == null ? "–" : v.toFixed(d);
function tokens(v) {
  if (v == null) return "–";
  for (const [unit, size] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["K", 1e3]]) if (v >= size) return (v / size).toFixed(v >= 10 * size ? 0 : 1) + unit;
  return String(v);
}
function duration(seconds) {
  if (seconds == null || !isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
  return h > 0 ? `${h}h ${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
const time = iso => iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" }) : "–";
const connectionLabel = r => r.connection === "frac" ? `frac m=${r.rate}`
  : ["static-hc", "dynamic-hc", "mhc", "mhc-lite"].includes(r.connection) ? `${r.connection} ×${r.rate}` : r.connection;
function runDuration(r) {
  if (!r.startedAt) return null;
  const end = r.finishedAt ? new Date(r.finishedAt) : new Date();
  return (end - new Date(r.startedAt)) / 1000;
}
const statusBadge = s => `<span class="status ${esc(s)}" data-status="${esc(s)}">${esc(s)}</span>`;
const progressBar = p => `<span class="bar"><span style="width:${Math.max(0, Math.min(100, p))}%"></span></span>${fixed(p, 1)}%`;

// ---- the key ------------------------------------------------------------------------------------------------------
function showKeyState() {
  document.getElementById("key-state").textContent = key() ? "key in use (this tab)" : "no key: read-only";
  document.querySelectorAll("[data-needs-key]").forEach(b => { b.disabled = !key(); b.title = key() ? "" : "paste an API key with the submit scope first"; });
}
document.getElementById("key-form").addEventListener("submit", e => {
  e.preventDefault();
  const input = document.getElementById("key");
  const value = input.value.trim();
  if (value && !/^[\x21-\x7e]+$/.test(value)) { document.getElementById("key-state").textContent = "not a key: printable ASCII only"; return; }
  if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
  input.value = "";
  showKeyState();
  route();   // reads that needed the key, and buttons that did
});

// ---- routing ------------------------------------------------------------------------------------------------------
let generation = 0;   // the current view's number: work of an earlier view checks it and stops
const stale = gen => gen !== generation;

function route() {
  cleanup.forEach(f => { try { f(); } catch { /* already gone */ } });
  cleanup = [];
  const gen = ++generation;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const run = path.match(/^\/runs\/(\d+)$/);
  const group = path.match(/^\/groups\/(.+)$/);
  let groupName = null;
  try { groupName = group && decodeURIComponent(group[1]); } catch { groupName = group[1]; }
  (run ? runPage(Number(run[1]), gen) : group ? groupPage(groupName) : path === "/compare" ? comparePage(params) : runsPage(params, gen))
    .catch(e => { if (!stale(gen)) view.innerHTML = `<p class="error">${esc(e.message)}</p>`; });
}
window.addEventListener("hashchange", route);

// ---- the runs table -----------------------------------------------------------------------------------------------
// [key, header, sort value (run, its latest losses), numeric]
const firstValidation = l => l && Object.values(l.validationLoss)[0];
const columns = [
  ["id", "run", r => r.id, true], ["name", "name", r => r.name], ["connection", "connection", r => connectionLabel(r)],
  ["preset", "preset", r => r.preset], ["architecture", "arch.", r => r.architecture], ["seed", "seed", r => r.seed ?? -1, true], ["status", "status", r => r.status],
  ["progress", "progress · ETA", r => r.progress, true], ["train", "train loss", (r, l) => num(l?.trainLoss?.value) ?? Infinity, true],
  ["val", "val loss", (r, l) => num(firstValidation(l)?.value) ?? Infinity, true],
  ["tokens", "tokens", r => r.tokens, true], ["duration", "duration", r => runDuration(r) ?? -1, true],
  ["createdAt", "created", r => r.createdAt], ["tags", "tags", r => r.tags.join(", ")],
];

/** The latest validation losses of a run: the first set in the cell, every set in its tooltip. */
function validationCell(l) {
  const sets = Object.entries(l?.validationLoss || {});
  if (!sets.length) return "–";
  const title = sets.map(([name, v]) => `${name.slice(4, -5)}: ${fixed(v.value)} at ${tokens(v.tokens)} tokens`).join("\n");
  return `<span title="${esc(title)}">${fixed(sets[0][1].value)}${sets.length > 1 ? ` <span class="muted">+${sets.length - 1}</span>` : ""}</span>`;
}

async function runsPage(params, gen) {
  const page = Number(params.get("page") || 1), pageSize = Number(params.get("pageSize") || 50);
  const filter = { status: params.get("status") || "", connection: params.get("connection") || "", text: params.get("q") || "" };
  let sort = { by: params.get("sort") || "id", desc: params.get("dir") !== "asc" };
  view.innerHTML = `
    <h1>Runs</h1>
    <div class="toolbar">
      <label>status <select id="f-status">${["", "queued", "running", "cancelling", "succeeded", "failed", "cancelled"].map(s => `<option ${s === filter.status ? "selected" : ""}>${s}</option>`).join("")}</select></label>
      <label>connection <select id="f-connection">${["", "residual", "post-norm", "static-hc", "dynamic-hc", "frac", "mhc", "mhc-lite"].map(s => `<option ${s === filter.connection ? "selected" : ""}>${s}</option>`).join("")}</select></label>
      <label>name or tag (this page) <input id="f-text" value="${esc(filter.text)}" placeholder="filter"></label>
      <span class="muted" id="count"></span>
      <button id="compare-selected" disabled>Compare selected</button>
      <span style="margin-left:auto" id="pager"></span>
    </div>
    <table id="runs"><thead><tr><th></th>${columns.map(([k, label, , num]) => `<th class="sortable ${num ? "num" : ""}" data-sort="${k}">${label}</th>`).join("")}</tr></thead><tbody></tbody></table>`;
  const go = changes => {
    const p = new URLSearchParams({ page, pageSize, status: filter.status, connection: filter.connection, q: filter.text, sort: sort.by, dir: sort.desc ? "desc" : "asc", ...changes });
    [...p.keys()].forEach(k => { if (!p.get(k)) p.delete(k); });
    location.hash = "#/?" + p.toString();
  };
  document.getElementById("f-status").onchange = e => go({ status: e.target.value, page: 1 });
  document.getElementById("f-connection").onchange = e => go({ connection: e.target.value, page: 1 });
  document.getElementById("f-text").onchange = e => go({ q: e.target.value, page: 1 });
  view.querySelectorAll("th[data-sort]").forEach(th => th.onclick = () => go({ sort: th.dataset.sort, dir: sort.by === th.dataset.sort && sort.desc ? "asc" : "desc" }));

  async function refresh() {
    const q = new URLSearchParams({ page, pageSize });
    if (filter.status) q.set("status", filter.status);
    if (filter.connection) q.set("connection", filter.connection);
    const data = await api(`api/runs?${q}`);
    if (stale(gen)) return;
    const text = filter.text.toLowerCase();
    const column = columns.find(c => c[0] === sort.by) || columns[0];
    const latest = new Map((data.latest || []).map(l => [l.runId, l]));
    const rows = data.items.filter(r => !text || r.name.toLowerCase().includes(text) || r.tags.some(t => t.toLowerCase().includes(text)))
      .sort((a, b) => { const x = column[2](a, latest.get(a.id)), y = column[2](b, latest.get(b.id)); return (x < y ? -1 : x > y ? 1 : 0) * (sort.desc ? -1 : 1); });
    view.querySelector("#runs tbody").innerHTML = rows.map(r => `
      <tr data-run="${r.id}">
        <td><input type="checkbox" class="pick" value="${r.id}" ${picked.has(r.id) ? "checked" : ""} aria-label="select run ${r.id}"></td>
        <td class="num"><a href="#/runs/${r.id}">${r.id}</a></td><td><a href="#/runs/${r.id}">${esc(r.name)}</a></td>
        <td>${esc(connectionLabel(r))}</td><td>${esc(r.preset)}</td><td>${esc(r.architecture)}</td><td class="num">${r.seed ?? "–"}</td><td>${statusBadge(r.status)}</td>
        <td class="num">${progressBar(r.progress)}${r.etaSeconds != null ? ` <span class="muted eta">${duration(r.etaSeconds)} left</span>` : ""}</td>
        <td class="num" data-col="train">${fixed(latest.get(r.id)?.trainLoss?.value)}</td><td class="num" data-col="val">${validationCell(latest.get(r.id))}</td>
        <td class="num">${tokens(r.tokens)} / ${tokens(r.tokenBudget)}</td>
        <td class="num">${duration(runDuration(r))}</td><td>${time(r.createdAt)}</td><td>${tagLinks(r.tags)}</td>
      </tr>`).join("") || `<tr><td colspan="${columns.length + 1}" class="muted">no runs</td></tr>`;
    document.getElementById("count").textContent = `${data.total} run${data.total === 1 ? "" : "s"}`;
    const pages = Math.max(1, Math.ceil(data.total / pageSize));
    document.getElementById("pager").innerHTML = `page ${page} of ${pages} ` +
      (page > 1 ? `<a href="#" data-page="${page - 1}">‹ newer</a> ` : "") + (page < pages ? `<a href="#" data-page="${page + 1}">older ›</a>` : "");
    document.querySelectorAll("[data-page]").forEach(a => a.onclick = e => { e.preventDefault(); go({ page: a.dataset.page }); });
    view.querySelectorAll("input.pick").forEach(box => box.onchange = () => {
      if (box.checked) picked.add(Number(box.value)); else picked.delete(Number(box.value));
      document.getElementById("compare-selected").disabled = picked.size < 2;
    });
  }
  const picked = new Set();
  document.getElementById("compare-selected").onclick = () => {
    const ids = [...picked].sort((a, b) => a - b);
    location.hash = `#/compare?runs=${ids.join(",")}&baseline=${ids[0]}`;
  };
  // Live status without reload: the table follows the API every two seconds while it is shown.
  const timer = setInterval(() => refresh().catch(() => { /* the next tick tries again */ }), 2000);
  cleanup.push(() => clearInterval(timer));
  await refresh();
}

// ---- the run page -------------------------------------------------------------------------------------------------
const chartSpecs = [
  { id: "loss", title: "training loss (nats/token) vs tokens", names: ["train/loss"], smooth: true },
  { id: "val", title: "validation loss (nats/token) vs tokens", prefix: "val/", suffix: "/loss" },
  { id: "lr", title: "learning rate vs tokens", names: ["train/lr"] },
  { id: "grad", title: "gradient norm (before clipping) vs tokens", names: ["train/grad_norm"] },
  { id: "tps", title: "throughput (tokens/s) vs tokens", names: ["train/tokens_per_second"] },
  { id: "mfu", title: "MFU (fraction of peak) vs tokens", names: ["train/mfu"] },
  { id: "gain", title: "composite gain of the residual path vs tokens", names: ["hc/composite_gain"] },
];
const palette = ["#1f6feb", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0a7ea4"];

/** Exponential moving average with debiasing (as TensorBoard smooths). */
function smooth(values, weight) {
  let last = 0, n = 0;
  return values.map(v => { if (v == null) return null; last = last * weight + (1 - weight) * v; n++; return last / (1 - Math.pow(weight, n)); });
}

/** Tick labels with as many digits as the ticks need to differ (a gain of 1.0001 to 1.0004 must not read 1, 1, 1). */
function yTicks(vals) {
  const finite = vals.filter(v => v != null && isFinite(v));
  const step = finite.length > 1 ? Math.abs(finite[1] - finite[0]) : 0;
  const digits = step > 0 ? Math.max(0, Math.min(8, Math.ceil(-Math.log10(step)) + 1)) : 2;
  return vals.map(v => v == null ? "" : Math.abs(v) >= 1e4 ? Math.round(v).toLocaleString("en") : v.toFixed(Math.abs(v) >= 100 ? 0 : digits));
}

/** uPlot's data for a chart: one x axis (tokens), one y series per metric (null where absent), plus the smoothed first. */
function chartData(spec, series) {
  const xs = [...new Set(series.flatMap(s => s.points.map(p => p.tokens)))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map(s => { const y = new Array(xs.length).fill(null); s.points.forEach(p => y[index.get(p.tokens)] = p.value); return y; });
  const weight = Number(document.getElementById("smoothing")?.value ?? 0.6);
  return spec.smooth && ys.length ? [xs, ...ys, smooth(ys[0], weight)] : [xs, ...ys];
}

function chart(el, spec, series) {
  // series: [{ name, points: [{ tokens, value }] }]
  const lines = series.map((s, i) => ({ label: s.name, stroke: palette[i % palette.length], width: spec.smooth ? 1 : 1.5, alpha: spec.smooth ? 0.35 : 1, spanGaps: true }));
  if (spec.smooth && series.length) lines.push({ label: `${series[0].name} (smoothed)`, stroke: palette[0], width: 2, spanGaps: true });
  el.dataset.points = String(series[0] ? series[0].points.length : 0);
  const width = Math.max(320, el.clientWidth - 10);
  const plot = new uPlot({
    width, height: 240, series: [{ label: "tokens", value: (u, v) => v == null ? "–" : tokens(v) }, ...lines],
    axes: [{ label: "tokens", values: (u, vals) => vals.map(tokens) }, { values: (u, vals) => yTicks(vals), size: (u, values) => 18 + 7.5 * Math.max(3, ...(values || []).map(v => String(v).length)) }], legend: { live: true }, cursor: { drag: { x: true, y: false } },
  }, chartData(spec, series), el);
  plot.names = series.map(s => s.name).join("\n");   // which series it draws: new ones need a new chart
  return plot;   // the caller destroys it
}

/** The run's connection analysis (from its latest evaluation job): composite gains, the unfolded connection matrix as
 * heatmaps drawn by the server, and the adjacent-layer cosine similarity as a chart. */
async function connectionSection(id, gen, plots) {
  const box = document.getElementById("analysis");
  let a;
  try { a = await api(`api/runs/${id}/analysis`); }
  catch (e) {
    if (!stale(gen)) box.innerHTML = `<p class="muted">${e.message.startsWith("404") ? "No analysis yet: evaluating a checkpoint (the run's evaluation, or POST /api/runs/" + id + "/evaluations) computes one." : esc(e.message)}</p>`;
    return;
  }
  if (stale(gen)) return;
  const gain = v => num(v) == null ? "–" : v.toFixed(4);
  box.innerHTML = `
    <div class="kv">
      <div class="muted">connection</div><div>${esc(a.connection)} (n = ${a.rate}), ${tokens(a.sampleTokens)} sample tokens</div>
      <div class="muted">composite gain, static A_r</div><div data-gain="static">${gain(a.staticCompositeGain)}</div>
      <div class="muted">composite gain, dynamic A_r (mean)</div><div data-gain="dynamic">${gain(a.dynamicCompositeGain)}</div>
    </div>
    <div class="heatmaps">
      ${a.staticMatrix ? `<img alt="static connection matrix" data-heatmap="static">` : ""}
      ${a.dynamicMatrix ? `<img alt="dynamic connection matrix" data-heatmap="dynamic">` : ""}
    </div>
    <div class="chart"><h3>cosine similarity of adjacent layers' hidden states (1 = the layer changed nothing)</h3><div class="plot" data-chart="similarity"></div></div>`;
  box.querySelectorAll("img[data-heatmap]").forEach(img => authImage(img, `api/runs/${id}/analysis/heatmap.svg?source=${img.dataset.heatmap}`)
    .catch(e => { img.alt = `${img.alt}: ${e.message}`; }));
  const cos = a.similarity.adjacentCosine;
  const el = box.querySelector("[data-chart=similarity]");
  el.dataset.points = String(cos.length);
  plots.set("similarity", new uPlot({
    width: Math.max(320, el.clientWidth - 10), height: 220,
    series: [{ label: "layer l" }, { label: "cos(h_l, h_l+1)", stroke: palette[0], width: 1.5, points: { show: true } }],
    axes: [{ label: "layer l (0 = embedding)", values: (u, vals) => vals.map(v => Number.isInteger(v) ? String(v) : "") }, { values: (u, vals) => yTicks(vals) }],
    scales: { x: { time: false } },
  }, [cos.map((_, i) => i), cos], el));
}

async function runPage(id, gen) {
  const detail = await api(`api/runs/${id}`);
  if (stale(gen)) return;
  const r = detail.run;
  view.innerHTML = `
    <h1>Run ${r.id}: ${esc(r.name)} ${statusBadge(r.status)}</h1>
    <div class="toolbar">
      <button id="cancel" data-needs-key>Cancel</button> <button id="retry" data-needs-key>Retry</button>
      <span id="action" class="muted"></span>
      <label style="margin-left:auto">smoothing <input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0.6"></label>
    </div>
    <div class="kv" id="summary"></div>
    <h2>Charts</h2><div class="charts" id="charts"></div>
    <h2>Attempts</h2><table id="attempts"></table>
    <h2>Checkpoints</h2><table id="checkpoints"></table>
    <h2>Evaluations</h2><table id="evaluations"></table>
    <h2>Connections</h2><div id="analysis"></div>
    <h2>Spec</h2><pre>${esc(JSON.stringify(detail.spec, null, 2))}</pre>`;
  showKeyState();
  const summary = d => {
    const x = d.run;
    document.getElementById("summary").innerHTML = [
      ["connection", esc(connectionLabel(x))], ["preset / architecture", esc(`${x.preset} / ${x.architecture}`)], ["status", statusBadge(x.status) + (x.failureReason ? ` <span class="error">${esc(x.failureReason)}</span>` : "")],
      ["progress", `${progressBar(x.progress)} step ${x.step} of ${x.totalSteps}, ${tokens(x.tokens)} of ${tokens(x.tokenBudget)} tokens`],
      ["ETA", duration(d.etaSeconds)], ["attempt", `${x.attempt} of at most ${d.maxAttempts}`], ["created / started / finished", `${time(x.createdAt)} / ${time(x.startedAt)} / ${time(x.finishedAt)}`],
      ["tags", esc(x.tags.join(", ")) || "–"],
    ].map(([k, v]) => `<div class="muted">${k}</div><div>${v}</div>`).join("");
    document.getElementById("attempts").innerHTML = "<tr><th>attempt</th><th>worker</th><th>started</th><th>ended</th><th>outcome</th><th>reason</th></tr>" +
      d.attempts.map(a => `<tr><td class="num">${a.attempt}</td><td>${esc(a.worker)}</td><td>${time(a.startedAt)}</td><td>${time(a.endedAt)}</td><td>${esc(a.outcome ?? "running")}</td><td>${esc(a.reason ?? "")}</td></tr>`).join("");
  };
  summary(detail);

  const act = async (verb, button) => {
    const out = document.getElementById("action");
    button.disabled = true;
    try { await api(`api/runs/${id}/${verb}`, { method: "POST" }); if (!stale(gen)) route(); }   // the page again: status, stream
    catch (e) { if (!stale(gen)) { out.innerHTML = `<span class="error">${esc(e.message)}</span>`; button.disabled = false; } }
  };
  document.getElementById("cancel").onclick = e => act("cancel", e.target);
  document.getElementById("retry").onclick = e => act("retry", e.target);

  // Charts: every series once from the metrics API, then live points from the event stream.
  const all = await api(`api/runs/${id}/metrics?maxPoints=2000&names=${encodeURIComponent(["train/loss", "train/lr", "train/grad_norm", "train/tokens_per_second", "train/mfu", "hc/composite_gain",
    ...Object.keys(detail.latestMetrics).filter(n => n.startsWith("val/") && n.endsWith("/loss"))].join(","))}`);
  if (stale(gen)) return;
  const byName = new Map(all.map(s => [s.name, s.points.map(p => ({ tokens: p.tokens, value: num(p.value), step: p.step }))]));
  const steps = new Map(all.map(s => [s.name, new Map(s.points.map((p, i) => [p.step, i]))]));   // step -> index, per series
  const snapshotLast = new Map(all.map(s => [s.name, s.points.length ? s.points[s.points.length - 1].step : -1]));
  const plots = new Map();
  let redraw = null;
  cleanup.push(() => { clearTimeout(redraw); plots.forEach(p => p.destroy()); plots.clear(); });
  // rebuild: new charts (first draw, smoothing changed); otherwise new points go into the existing charts, and only a
  // chart that gained a series (a validation set's first point) is made anew.
  const draw = (rebuild = true) => {
    if (stale(gen)) return;
    const holder = document.getElementById("charts");
    for (const spec of chartSpecs) {
      const series = [...byName.entries()].filter(([n]) => spec.names ? spec.names.includes(n) : n.startsWith(spec.prefix) && n.endsWith(spec.suffix))
        .map(([name, points]) => ({ name, points }));
      if (!series.length) continue;
      const existing = plots.get(spec.id);
      if (!rebuild && existing && existing.names === series.map(x => x.name).join("\n")) {
        existing.setData(chartData(spec, series));
        existing.root.parentElement.dataset.points = String(series[0].points.length);
        continue;
      }
      existing?.destroy();
      let box = holder.querySelector(`[data-box="${spec.id}"]`);
      if (!box) {
        box = document.createElement("div");
        box.className = "chart";
        box.dataset.box = spec.id;
        const next = [...holder.children].find(b => chartSpecs.findIndex(x => x.id === b.dataset.box) > chartSpecs.indexOf(spec));
        holder.insertBefore(box, next || null);   // in the order of chartSpecs, whenever a chart appears
      }
      box.innerHTML = `<h3>${spec.title}</h3><div class="plot" data-chart="${spec.id}"></div>`;
      plots.set(spec.id, chart(box.querySelector(".plot"), spec, series));
    }
  };
  draw();
  document.getElementById("smoothing").oninput = () => draw();
  connectionSection(id, gen, plots).catch(() => { /* shown in its box */ });

  // Checkpoints and evaluations (with standard errors).
  const [checkpoints, evaluations] = await Promise.all([api(`api/runs/${id}/checkpoints`), api(`api/runs/${id}/evaluations`)]);
  if (stale(gen)) return;
  document.getElementById("checkpoints").innerHTML = "<tr><th class='num'>step</th><th class='num'>tokens</th><th class='num'>size</th><th>sha256</th><th></th></tr>" +
    (checkpoints.map(c => `<tr><td class="num">${c.step}</td><td class="num">${tokens(c.tokens)}</td><td class="num">${(c.bytes / 1048576).toFixed(1)} MiB</td><td><code>${esc(c.sha256.slice(0, 16))}…</code></td><td><a href="${esc(c.downloadUrl.replace(/^\//, ""))}">download</a></td></tr>`).join("")
      || "<tr><td colspan='5' class='muted'>none yet</td></tr>");
  const lastStep = Math.max(-1, ...evaluations.map(e => e.step));
  document.getElementById("evaluations").innerHTML = "<tr><th>task</th><th>metric</th><th class='num'>value</th><th class='num'>± standard error</th><th class='num'>step</th></tr>" +
    (evaluations.filter(e => e.step === lastStep && e.metric !== "items").map(e => `<tr><td>${esc(e.task)}</td><td>${esc(e.metric)}</td><td class="num">${(100 * e.value).toFixed(1)}%</td><td class="num">${e.stderr == null ? "–" : (100 * e.stderr).toFixed(1) + " pt"}</td><td class="num">${e.step}</td></tr>`).join("")
      || "<tr><td colspan='5' class='muted'>no evaluation results</td></tr>");

  // Live: status transitions and new points, until the run ends.
  if (!["succeeded", "failed", "cancelled"].includes(r.status)) {
    const charted = ["train/loss", "train/lr", "train/grad_norm", "train/tokens_per_second", "train/mfu", "hc/composite_gain", "val/"];
    let latest = 0;   // status answers may arrive out of order: only the newest request's is shown
    const stream = eventStream(`api/runs/${id}/events?names=${encodeURIComponent(charted.join(","))}`, {
      metric: data => {
        const p = JSON.parse(data);
        // The stream replays the run's history first: what the snapshot already holds (downsampled) is skipped.
        if (p.step <= (snapshotLast.get(p.name) ?? -1) && !steps.get(p.name)?.has(p.step)) return;
        const list = byName.get(p.name) || [];
        const index = steps.get(p.name) || new Map();
        const point = { tokens: p.tokens, value: num(p.value), step: p.step };
        if (index.has(p.step)) list[index.get(p.step)] = point; else { index.set(p.step, list.length); list.push(point); }
        byName.set(p.name, list);
        steps.set(p.name, index);
        if (redraw == null) redraw = setTimeout(() => { redraw = null; draw(false); }, 1000);
      },
      status: async data => {
        const s = JSON.parse(data);
        if (s.final) stream.close();
        const ticket = ++latest;
        const d = await api(`api/runs/${id}`).catch(() => null);
        if (!d || ticket !== latest || stale(gen)) return;
        summary(d);
        view.querySelector("h1 .status").outerHTML = statusBadge(d.run.status);
      },
      open: () => { if (!stale(gen)) document.getElementById("action").textContent = ""; },
      error: message => { if (!stale(gen)) document.getElementById("action").innerHTML = `<span class="error">live updates: ${esc(message)}</span>`; },
    });
    cleanup.push(() => stream.close());
  }
}

// ---- the compare view ---------------------------------------------------------------------------------------------
/** The value of a curve at x by linear interpolation (null outside it), as the comparison API reads curves. */
function at(points, x) {
  if (!points.length || x < points[0].tokens || x > points[points.length - 1].tokens) return null;
  let lo = 0, hi = points.length - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (points[mid].tokens <= x) lo = mid; else hi = mid; }
  const a = points[lo], b = points[hi];
  return b.tokens === a.tokens ? a.value : a.value + (b.value - a.value) * (x - a.tokens) / (b.tokens - a.tokens);
}
const meanStd = v => { const n = v.length, m = v.reduce((s, x) => s + x, 0) / n; return [m, n > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1)) : 0]; };
const sd = (s, d = 4) => `${fixed(s.mean, d)}${s.std == null ? "" : ` ± ${fixed(s.std, d)}`}`;
const interval = (d, f) => `${f(d.mean)}${d.low == null ? "" : ` [${f(d.low)}, ${f(d.high)}]`}`;
const signed = (v, digits = 4) => num(v) == null ? "–" : (v >= 0 ? "+" : "") + v.toFixed(digits);

async function comparePage(params) {
  const ids = (params.get("runs") || "").split(",").map(Number).filter(x => x > 0);
  const baseline = Number(params.get("baseline") || ids[0] || 0);
  view.innerHTML = `<h1>Compare</h1>
    <div class="toolbar">
      <label>runs <input id="c-runs" value="${esc(ids.join(","))}" placeholder="e.g. 1,2,3"></label>
      <label>baseline <input id="c-base" value="${baseline || ""}" size="5"></label>
      <label>metric <select id="c-metric"></select></label>
      <button id="c-go">Compare</button> <a id="c-link" href="${esc(location.hash)}">link to this view</a>
    </div><div id="c-body"></div>`;
  document.getElementById("c-go").onclick = () => {
    const r = document.getElementById("c-runs").value.replace(/\s/g, ""), b = document.getElementById("c-base").value.trim();
    location.hash = `#/compare?runs=${encodeURIComponent(r)}${b ? `&baseline=${encodeURIComponent(b)}` : ""}&metric=${encodeURIComponent(document.getElementById("c-metric").value)}`;
  };
  if (ids.length < 2) { document.getElementById("c-body").innerHTML = `<p class="muted">Pick two or more runs (in the runs table, or their ids here).</p>`; return; }
  const c = await api(`api/comparisons?runs=${ids.join(",")}&baseline=${baseline}`);
  const variants = [c.baselineVariant, ...c.variants.map(v => v.variant)];
  const metrics = [...new Set(c.variants.flatMap(v => v.curves.map(x => x.metric)))];
  const metric = params.get("metric") && metrics.includes(params.get("metric")) ? params.get("metric")
    : metrics.find(m => m.startsWith("val/")) || metrics[0] || "train/loss";
  document.getElementById("c-metric").innerHTML = metrics.map(m => `<option ${m === metric ? "selected" : ""}>${esc(m)}</option>`).join("");
  document.getElementById("c-metric").onchange = () => document.getElementById("c-go").click();

  // Every run's curve of the metric, then per variant the mean over its seeds with a +-1 std band, on the baseline's tokens.
  const all = await Promise.all(variants.flatMap(v => v.runs).map(async id => {
    const s = await api(`api/runs/${id}/metrics?names=${encodeURIComponent(metric)}&maxPoints=2000`);
    return [id, s.length ? s[0].points.filter(p => num(p.value) != null) : []];
  }));
  const curves = new Map(all);
  // Up to the largest token count every run reaches (as the API reads them), so no line changes its seeds along the way.
  const reach = Math.min(...variants.flatMap(v => v.runs).map(id => { const c = curves.get(id); return c.length ? c[c.length - 1].tokens : 0; }));
  const grid = [...new Set(variants.flatMap(v => v.runs).flatMap(id => curves.get(id).map(p => p.tokens)))].filter(x => x <= reach).sort((a, b) => a - b);
  const lines = variants.map(v => grid.map(x => {
    const vals = v.runs.map(id => at(curves.get(id), x)).filter(y => y != null);
    return vals.length ? meanStd(vals) : null;
  }));
  const body = document.getElementById("c-body");
  body.innerHTML = `<div class="charts">
      <div class="chart"><h3>${esc(metric)} (nats/token) vs tokens: mean over seeds, band ± 1 std</h3><div data-chart="compare"></div></div>
      <div class="chart"><h3>candidate − baseline at equal tokens (paired by seed; below 0: candidate better)</h3><div data-chart="delta"></div></div>
    </div>
    <h2>Verdicts (paired by seed, 95% Student t intervals)</h2><table id="verdicts"></table>
    <h2>Downstream</h2><table id="downstream"></table>`;
  const data = [grid], series = [{ label: "tokens", value: (u, v) => v == null ? "–" : tokens(v) }], bands = [];
  variants.forEach((v, i) => {
    const colour = palette[i % palette.length], label = `${v.label} (${v.seeds.length} seed${v.seeds.length === 1 ? "" : "s"})`;
    data.push(lines[i].map(p => p && p[0]));
    series.push({ label, stroke: colour, width: 2, spanGaps: true });
    if (v.runs.length > 1) {
      const top = data.length, bottom = data.length + 1;
      data.push(lines[i].map(p => p && p[0] + p[1]), lines[i].map(p => p && p[0] - p[1]));
      series.push({ label: `${v.label} +1 std`, stroke: colour, width: 0, spanGaps: true }, { label: `${v.label} −1 std`, stroke: colour, width: 0, spanGaps: true });
      bands.push({ series: [top, bottom], fill: colour + "22" });
    }
  });
  const compareEl = body.querySelector("[data-chart=compare]");
  compareEl.dataset.series = String(variants.length);
  const axes = [{ label: "tokens", values: (u, vals) => vals.map(tokens) }, { values: (u, vals) => yTicks(vals), size: (u, values) => 18 + 7.5 * Math.max(3, ...(values || []).map(v => String(v).length)) }];
  const width = el => Math.max(320, el.clientWidth - 10);
  const main = new uPlot({ width: width(compareEl), height: 300, series, bands, axes }, data, compareEl);
  cleanup.push(() => main.destroy());

  // The delta panel: per candidate variant, the mean over its seeds of (candidate seed s - baseline seed s) at x.
  const base = c.baselineVariant;
  const deltaData = [grid], deltaSeries = [{ label: "tokens", value: (u, v) => v == null ? "–" : tokens(v) }];
  c.variants.forEach((vc, i) => {
    const v = vc.variant;
    deltaData.push(grid.map(x => {
      const diffs = v.seeds.map((seed, j) => {
        const b = base.seeds.indexOf(seed);
        if (b < 0) return null;
        const yc = at(curves.get(v.runs[j]), x), yb = at(curves.get(base.runs[b]), x);
        return yc == null || yb == null ? null : yc - yb;
      }).filter(d => d != null);
      return diffs.length ? meanStd(diffs)[0] : null;
    }));
    deltaSeries.push({ label: `${v.label} − ${base.label}`, stroke: palette[(i + 1) % palette.length], width: 2, spanGaps: true });
  });
  const deltaEl = body.querySelector("[data-chart=delta]");
  deltaEl.dataset.series = String(c.variants.length);
  const delta = new uPlot({ width: width(deltaEl), height: 300, series: deltaSeries, axes }, deltaData, deltaEl);
  cleanup.push(() => delta.destroy());

  // The verdicts, as the API gives them.
  document.getElementById("verdicts").innerHTML = "<tr><th>candidate</th><th>metric</th><th class='num'>baseline</th><th class='num'>candidate</th><th class='num'>delta [95% interval]</th><th>verdict</th><th>speedup</th></tr>" +
    c.variants.flatMap(vc => vc.curves.map(x => `<tr data-variant="${esc(vc.variant.label)}"><td>${esc(vc.variant.label)}${vc.confounded ? ' <span class="error" title="' + esc(vc.confounds.map(d => `${d.field}: ${d.baseline} vs ${d.candidate}`).join("; ")) + '">confounded</span>' : ""}</td>
      <td>${esc(x.metric)}</td><td class="num">${sd(x.baseline)}</td><td class="num">${sd(x.candidate)}</td><td class="num">${interval(x.delta, v => signed(v))}</td>
      <td class="verdict">${esc(x.delta.verdict)}</td><td>${x.speedup ? esc(x.speedup.interval ? interval(x.speedup.interval, v => v.toFixed(2) + "×") : x.speedup.summary) : ""}</td></tr>`)).join("") +
    c.variants.map(vc => `<tr><td colspan="7" class="muted wrap">${esc(vc.variant.label)}: ${esc(vc.verdict)}</td></tr>`).join("");
  document.getElementById("downstream").innerHTML = "<tr><th>candidate</th><th>task metric</th><th class='num'>baseline</th><th class='num'>candidate</th><th class='num'>delta [95% interval]</th><th>verdict</th></tr>" +
    (c.variants.flatMap(vc => vc.downstream.map(t => `<tr><td>${esc(vc.variant.label)}</td><td>${esc(t.name)}</td><td class="num">${sd({ mean: 100 * t.baseline.mean, std: t.baseline.std == null ? null : 100 * t.baseline.std }, 1)}%</td>
      <td class="num">${sd({ mean: 100 * t.candidate.mean, std: t.candidate.std == null ? null : 100 * t.candidate.std }, 1)}%</td><td class="num">${interval(t.delta, v => signed(100 * v, 1))} pt</td>
      <td>${t.noise ? "noise (within 2 SE of the items)" : esc(t.delta.verdict)}</td></tr>`)).join("") || "<tr><td colspan='6' class='muted'>no downstream results in common</td></tr>");
}

// ---- the group view -----------------------------------------------------------------------------------------------
const tagLinks = tags => tags.map(t => t.startsWith("group:") ? `<a href="#/groups/${encodeURIComponent(t.slice(6))}">${esc(t)}</a>` : esc(t)).join(", ");

async function groupPage(name) {
  const g = await api(`api/groups/${encodeURIComponent(name)}`);
  const sets = g.validationSets;
  const compare = g.comparisonUrl ? "#/compare?" + g.comparisonUrl.split("?")[1] : null;
  view.innerHTML = `<h1>Group ${esc(g.group)}</h1>
    <p>${compare ? `<a id="group-compare" href="${esc(compare)}">compare these runs</a> · ` : ""}baseline: run ${g.baselineRunId}; deltas are candidate − baseline, paired by seed (95% Student t intervals).</p>
    <h2>By variant (mean ± std over seeds)</h2>
    <table id="group-variants"><tr><th>variant</th><th>connection</th><th>seeds</th>${sets.map(s => `<th class="num">val loss ${esc(s)}</th><th class="num">delta ${esc(s)} [95%]</th>`).join("")}<th class="num">downstream avg</th><th>verdict</th></tr>
    ${g.variants.map(v => `<tr data-variant="${esc(v.variant.label)}"><td>${esc(v.variant.label)}${v.isBaseline ? " (baseline)" : ""}</td><td>${esc(connectionLabel(v.variant))}</td><td>${v.variant.seeds.join(" ")}</td>
      ${sets.map(s => `<td class="num">${v.validationLoss[s] ? sd(v.validationLoss[s]) : "–"}</td><td class="num">${v.lossDelta[s] ? interval(v.lossDelta[s], x => signed(x)) : ""}</td>`).join("")}
      <td class="num">${v.downstreamAverage ? sd({ mean: 100 * v.downstreamAverage.mean, std: v.downstreamAverage.std == null ? null : 100 * v.downstreamAverage.std }, 1) + "%" : "–"}</td>
      <td class="wrap">${v.confounded ? '<span class="error">confounded</span> ' : ""}${esc(v.verdict ?? "")}</td></tr>`).join("")}</table>
    <h2>By run (the paper's layout)</h2>
    <table id="group-runs"><tr><th>run</th><th>name</th><th>connection</th><th>status</th>${sets.map(s => `<th class="num">loss ${esc(s)}</th><th class="num">ppl</th><th class="num">delta</th>`).join("")}<th class="num">downstream avg</th><th class="num">delta</th><th class="num">composite gain</th></tr>
    ${g.rows.map(r => `<tr><td class="num"><a href="#/runs/${r.run.id}">${r.run.id}</a></td><td>${esc(r.run.name)}${r.isBaseline ? " (baseline)" : ""}</td><td>${esc(connectionLabel(r.run))}</td><td>${statusBadge(r.run.status)}</td>
      ${sets.map(s => `<td class="num">${fixed(r.validationLoss[s])}</td><td class="num">${fixed(r.perplexity[s], 2)}</td><td class="num">${signed(r.lossDelta[s])}</td>`).join("")}
      <td class="num">${r.downstreamAverage == null ? "–" : (100 * r.downstreamAverage).toFixed(1) + "%" + (r.downstreamStderr == null ? "" : ` ± ${(100 * r.downstreamStderr).toFixed(1)}`)}</td>
      <td class="num">${r.downstreamDelta == null ? "–" : signed(100 * r.downstreamDelta, 1) + " pt" + (r.downstreamNoise ? " (noise)" : "")}</td><td class="num">${r.compositeGain == null ? "–" : fixed(r.compositeGain, 4)}</td></tr>`).join("")}</table>`;
}

showKeyState();
route();
