// suanli web page: every number shown comes from /api/<command>, which returns the CLI's --json object.
// No arithmetic on the numbers here beyond unit conversion for display.
"use strict";

const GiB = 2 ** 30;
const state = { view: "fit", lang: "en", messages: {}, labels: {}, charts: {}, tables: {}, results: {} };

// ---- small helpers -------------------------------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function tr(key, fallback) {
  return state.messages[key] || fallback;
}

// a catalogue message with {fields} filled in (the catalogue's own placeholders)
function trf(key, fallback, fields) {
  return tr(key, fallback).replace(/\{(\w+)\}/g, (whole, name) => (name in fields ? String(fields[name]) : whole));
}

// a JSON component key (kv_cache_bytes, dp_comm_exposed_s) as the CLI's table labels say it, in the page's language
function label(jsonKey) {
  const english = jsonKey.replace(/_(bytes|s)$/, "").replace(/_/g, " ");
  return state.labels[english] || english;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "on") Object.entries(v).forEach(([ev, fn]) => node.addEventListener(ev, fn));
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function get(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function fmtBytes(b) {
  if (b == null) return "—";
  return b >= GiB ? `${(b / GiB).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(0)} MiB`;
}

function fmtNumber(x, digits = 3) {
  if (x == null) return "—";
  const units = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [scale, prefix] of units) if (Math.abs(x) >= scale) return `${+(x / scale).toPrecision(digits)} ${prefix}`;
  return `${+x.toPrecision(digits)}`;
}

function fmtSeconds(s) {
  if (s == null) return "—";
  if (s >= 86400) return `${(s / 86400).toFixed(1)} d`;
  if (s >= 3600) return `${(s / 3600).toFixed(1)} h`;
  if (s >= 1) return `${s.toFixed(2)} s`;
  return `${(s * 1e3).toFixed(2)} ms`;
}

const FORMATS = {
  bytes: fmtBytes, seconds: fmtSeconds, number: (x) => fmtNumber(x),
  percent: (x) => (x == null ? "—" : `${(100 * x).toFixed(1)}%`),
  usd: (x) => (x == null ? "—" : `$${fmtNumber(x)}`),
};

// ---- API -------------------------------------------------------------------------------------------------------
// The texts of a report said in the page's language (headlines, advice, notes, layouts), by dotted JSON path, from
// /api/said/<command>: the JSON object stays the CLI's (English text); the page shows these in its place.
const SAID = new WeakMap();

function say(report, path) {
  const said = SAID.get(report);
  return (said && said[path]) || get(report, path);
}

async function api(command, params, { said = false } = {}) {
  const translated = said && state.lang !== "en";
  const route = translated ? `said/${command}` : command;
  const body = await apiCall(route, command, params);
  if (!translated) return body;
  SAID.set(body.json, body.said);
  return body.json;
}

async function apiCall(route, command, params) {
  const config = $("#config").value.trim();
  let response;
  if (config && !["models", "gpus", "messages"].includes(command) && !command.startsWith("explain")) {
    let parsed;
    try { parsed = JSON.parse(config); } catch (e) { throw new Error(tr("web.error.bad_json", "config.json is not valid JSON") + `: ${e.message}`); }
    const args = Object.fromEntries(Object.entries(params).filter(([k]) => k !== "model"));
    response = await fetch(`/api/${route}`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ args, config: parsed }),
    });
  } else {
    response = await fetch(`/api/${route}?${new URLSearchParams(params)}`);
  }
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch (e) { throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`); }
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showError(error) {
  $("#error").textContent = error ? String(error.message || error) : "";
}

// ---- state in the URL: #view?model=…&gpu=…&lang=…&<the view's options> -----------------------------------------
function formOf(view) {
  return $(`#view-${view} form`);
}

function formParams(view) {
  const params = {};
  const form = formOf(view);
  if (!form) return params;
  for (const field of form.elements) {
    if (field.name && field.value !== "") params[field.name] = field.value;
  }
  return params;
}

function writeUrl() {
  const params = new URLSearchParams({ model: $("#model").value, gpu: $("#gpu").value, lang: state.lang,
    ...formParams(state.view) });
  history.replaceState(null, "", `#${state.view}?${params}`);
}

function readUrl() {
  const hash = location.hash.replace(/^#/, "");
  const [view, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  if (view && $(`#view-${view}`)) state.view = view;
  if (params.get("model")) $("#model").value = params.get("model");
  if (params.get("lang")) state.lang = params.get("lang") === "zh" ? "zh" : "en";
  const form = formOf(state.view);
  if (form) for (const field of form.elements) if (field.name && params.has(field.name)) field.value = params.get(field.name);
  return params.get("gpu");
}

// ---- language --------------------------------------------------------------------------------------------------
async function setLang(lang, recompute = true) {
  state.lang = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  try {
    const catalogue = await api("messages", { lang });
    state.messages = catalogue.messages || {};
    state.labels = catalogue.labels || {};
  } catch (e) {
    state.messages = {};
    state.labels = {};
  }
  for (const node of $$("[data-i18n]")) {
    if (!node.dataset.en) node.dataset.en = node.textContent;
    node.textContent = tr(node.dataset.i18n, node.dataset.en);
  }
  for (const node of $$("[data-i18n-placeholder]")) {
    if (!node.dataset.enPlaceholder) node.dataset.enPlaceholder = node.placeholder;
    node.placeholder = tr(node.dataset.i18nPlaceholder, node.dataset.enPlaceholder);
  }
  $$("#langs button").forEach((b) => b.classList.toggle("active", b.dataset.lang === lang));
  writeUrl();
  if (recompute) await compute(); // headlines, notes and advice come from the API in the chosen language
  else rerender();
}

// ---- charts ----------------------------------------------------------------------------------------------------
function chart(id, option, csv) {
  const node = document.getElementById(id);
  let instance = state.charts[id];
  if (!instance) {
    const box = el("div", { class: "chart-box" });
    node.replaceWith(box);
    box.append(node, el("button", { type: "button", class: "csv", title: tr("web.csv", "download the chart's data as CSV"),
      on: { click: () => downloadCsv(id) } }, "CSV"));
    instance = echarts.init(node, null, { renderer: "canvas" });
    state.charts[id] = instance;
  }
  const toolbox = { feature: { saveAsImage: { title: "PNG", name: `suanli-${id}`, pixelRatio: 2 } } };
  instance.setOption({ animation: false, toolbox, tooltip: { trigger: "item" }, ...option }, true);
  state.tables[id] = csv;
  node.dataset.rendered = "1";
}

function downloadCsv(id) {
  const { header, rows } = state.tables[id] || { header: [], rows: [] };
  const quote = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v ?? ""));
  const text = [header, ...rows].map((r) => r.map(quote).join(",")).join("\n") + "\n";
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `suanli-${id}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
}

// ---- figures with tooltips (the --explain derivation of each number) -----------------------------------------
function figures(container, report, specs) {
  const explained = Object.fromEntries((report.explanations || []).map((e) => [e.name, e]));
  container.replaceChildren(...specs.map(([path, key, label, format, explainName]) => {
    const value = get(report, path);
    const e = explained[explainName || path.split(".").pop()];
    const tip = e ? `${e.text}` : `${path} (suanli ${report.command} --json)`;
    return el("div", { class: "fig", title: tip, "data-path": path },
      el("span", { class: "label" }, tr(key, label)), el("span", { class: "value" }, FORMATS[format](value)));
  }));
}

// ---- views -----------------------------------------------------------------------------------------------------
const VIEWS = {
  fit: { run: runFit, render: renderFit },
  train: { run: runTrain, render: renderTrain },
  serve: { run: runServe, render: renderServe },
  plan: { run: runPlan, render: renderPlan },
  "plan-serve": { run: runPlanServe, render: renderPlanServe },
  glossary: { run: runGlossary, render: renderGlossary },
};

function baseParams(withGpu = true) {
  const params = { model: $("#model").value.trim(), lang: state.lang }; // notes, headlines, errors in the page's language
  if (withGpu) params.gpu = $("#gpu").value;
  return params;
}

async function runFit() {
  state.results.fit = await api("fit", { ...baseParams(false), ...formParams("fit") }, { said: true });
}

function renderFit() {
  const report = state.results.fit;
  if (!report) return;
  const filter = $("#fit-filter").value.trim().toLowerCase();
  const single = $("#fit-single").checked;
  const rows = report.rows.filter((r) => (!filter || `${r.gpu} ${r.name}`.toLowerCase().includes(filter))
    && (!single || r.min_gpus === 1));
  const fitting = rows.filter((r) => r.min_gpus != null).slice().reverse();
  document.getElementById("chart-fit").style.height = `${Math.max(300, 100 + 18 * fitting.length)}px`;
  state.charts["chart-fit"]?.resize();
  chart("chart-fit", {
    title: { text: `${report.model}: ${tr("web.fit.chart", "memory per GPU and headroom")}`, textStyle: { fontSize: 14 } },
    legend: { top: 32 },
    grid: { left: 175, right: 40, top: 70, bottom: 30 }, // room for the longest accelerator name (jetson-agx-orin-64gb ×4)
    xAxis: { type: "value", name: "GiB" },
    yAxis: { type: "category", data: fitting.map((r) => `${r.gpu} ×${r.min_gpus}`) },
    series: [
      { name: tr("web.fit.used", "used per GPU"), type: "bar", stack: "m", data: fitting.map((r) => +(r.per_gpu_total_bytes / GiB).toFixed(2)) },
      { name: tr("web.fit.headroom", "headroom"), type: "bar", stack: "m", data: fitting.map((r) => +(r.headroom_bytes / GiB).toFixed(2)) },
    ],
  }, { header: ["gpu", "min_gpus", "per_gpu_total_bytes", "headroom_bytes", "capacity_bytes", "layout"],
    rows: rows.map((r) => [r.gpu, r.min_gpus, r.per_gpu_total_bytes, r.headroom_bytes, r.capacity_bytes, r.layout]) });
  const head = el("tr", {}, ...["gpu", "min GPUs", "per GPU", "headroom", "layout"].map((h, i) =>
    el("th", {}, tr(`web.fit.col${i}`, h))));
  const body = rows.map((r) => el("tr", { class: r.min_gpus == null ? "nofit" : "" },
    el("td", { title: r.name }, r.gpu), el("td", {}, r.min_gpus ?? "—"), el("td", {}, fmtBytes(r.per_gpu_total_bytes)),
    el("td", {}, headroomBar(r)), fitLayoutCell(report, r)));
  $("#fit-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

function fitLayoutCell(report, row) {
  const at = report.rows.indexOf(row);
  const note = row.note ? say(report, `rows.${at}.note`) : "";
  return el("td", { title: note }, (row.layout && say(report, `rows.${at}.layout`)) || note || "—");
}

function headroomBar(row) {
  if (row.headroom_bytes == null) return "—";
  const share = Math.max(0, Math.min(1, row.headroom_bytes / row.capacity_bytes));
  return el("span", { class: "bar", title: `${fmtBytes(row.headroom_bytes)} / ${fmtBytes(row.capacity_bytes)}` },
    el("span", { class: "track" }, el("span", { class: "fill", style: `width:${(100 * share).toFixed(0)}%` })),
    ` ${fmtBytes(row.headroom_bytes)}`);
}

async function runTrain() {
  state.results.train = await api("train", { ...baseParams(), ...formParams("train"), explain: "true" }, { said: true });
}

const TRAIN_FIGURES = [
  ["memory.per_gpu.total_bytes", "web.train.memory", "memory per GPU", "bytes", "total_bytes_per_gpu"],
  ["time.step_s", "web.train.step", "step time", "seconds"],
  ["time.tokens_per_s", "web.train.tokens_per_s", "tokens/s", "number"],
  ["time.mfu", "web.train.mfu", "MFU", "percent"],
  ["time.tflops_per_gpu", "web.train.tflops", "TFLOP/s per GPU", "number"],
  ["time.total_s", "web.train.total", "total time", "seconds"],
  ["cost.gpu_hours", "web.train.gpu_hours", "GPU-hours", "number"],
  ["cost.usd", "web.train.usd", "cost", "usd"],
  ["cost.energy_kwh", "web.train.energy", "energy (kWh)", "number"],
];

function renderTrain() {
  const report = state.results.train;
  if (!report) return;
  $("#train-headline").textContent = say(report, "headline") || "";
  figures($("#train-figures"), report, TRAIN_FIGURES);
  const per = report.memory.per_gpu;
  const parts = Object.entries(per).filter(([k]) => k !== "total_bytes");
  chart("chart-train-memory", {
    title: { text: tr("web.train.memory_chart", "memory per GPU by component"), textStyle: { fontSize: 14 } },
    legend: { type: "scroll", bottom: 0 },
    grid: { left: 60, right: 70, top: 40, bottom: 60 },
    xAxis: { type: "category", data: [report.gpu] },
    yAxis: { type: "value", name: "GiB" },
    series: parts.map(([k, v], i) => ({ name: label(k), type: "bar", stack: "m", data: [+(v / GiB).toFixed(2)],
      markLine: i ? undefined : { symbol: "none", data: [{ yAxis: +(report.memory.capacity_bytes / GiB).toFixed(2),
        label: { formatter: tr("web.train.capacity", "capacity") } }] } })),
  }, { header: ["component", "bytes"], rows: [...parts, ["total_bytes", per.total_bytes], ["capacity_bytes", report.memory.capacity_bytes]] });
  const steps = Object.entries(report.time.breakdown || {});
  chart("chart-train-time", {
    title: { text: tr("web.train.time_chart", "step time breakdown"), textStyle: { fontSize: 14 } },
    grid: { left: 10, right: 40, top: 40, bottom: 30, containLabel: true }, // room for the longest label in either language
    xAxis: { type: "value", name: "ms" },
    yAxis: { type: "category", data: steps.map(([k]) => label(k)) },
    series: [{ type: "bar", name: "ms", data: steps.map(([, v]) => +(v * 1e3).toFixed(3)) }],
  }, { header: ["part", "seconds"], rows: steps });
  const advice = report.memory.suggestions || [];
  $("#train-advice").replaceChildren(...(advice.length ? [el("span", {}, tr("web.train.fits_with", "Fits with:"))] : []),
    ...advice.map((s) => el("button", { type: "button", class: "suggestion", on: { click: () => applySuggestion(s, report) } },
      `${say(report, `memory.suggestions.${advice.indexOf(s)}.change`)} (${fmtBytes(s.total_bytes)})`)));
}

function applySuggestion(suggestion, report) {
  const form = formOf("train");
  const layout = suggestion.layout;
  const set = (name, value) => { form.elements[name].value = value; };
  set("gpus", suggestion.gpus);
  set("tp", layout.tp);
  set("pp", layout.pp);
  set("zero", String(layout.zero));
  set("micro-batch", layout.micro_batch);
  set("global-batch", layout.global_batch);
  set("recompute", layout.recompute);
  set("offload-optimizer", layout.offload_optimizer);
  set("method", suggestion.method);
  set("optimizer", report.job.optimizer); // the suggestion kept the job's optimizer
  compute();
}

async function runServe() {
  const params = { ...baseParams(), ...formParams("serve") };
  const sim = { ...baseParams(), prompt: params.prompt, output: params.output, requests: "200", concurrency: "1,2,4,8,16,32,64",
    "timeline-points": String(TIMELINE_POINTS) };
  for (const key of ["quant", "engine"]) if (params[key]) sim[key] = params[key];
  if (params.gpus) sim.tp = params.gpus; // infer's --gpus is the tensor parallel degree; simulate's would be replicas of tp 1
  const roof = { ...baseParams(), seq: params.prompt || "1000", batch: params.batch || "1", tp: params.gpus || "1" };
  const simulated = !params.engine || SIMULATED_ENGINES.includes(params.engine);
  const [infer, simulate, roofline] = await Promise.all([
    api("infer", { ...params, explain: "true" }, { said: true }), simulated ? api("simulate", sim) : null,
    api("roofline", roof)]);
  state.results.serve = { infer, simulate, roofline, engine: params.engine };
}

// The engines `suanli simulate --engine` schedules; infer also prices llama.cpp, whose server the simulator does not
// model, so for it the view shows infer and the roofline and says why the curves are absent.
const SIMULATED_ENGINES = ["vllm", "sglang", "trtllm", "tgi", "hf"];

const SERVE_FIGURES = [
  ["memory.per_gpu.total_bytes", "web.serve.memory", "memory per GPU", "bytes", "total_bytes_per_gpu"],
  ["memory.kv_capacity_tokens", "web.serve.kv_capacity", "KV pool (tokens)", "number"],
  ["latency.ttft_s", "web.serve.ttft", "TTFT", "seconds"],
  ["latency.tpot_s", "web.serve.tpot", "TPOT", "seconds"],
  ["latency.e2e_s", "web.serve.e2e", "end to end", "seconds"],
  ["throughput.output_tokens_per_s", "web.serve.throughput", "output tokens/s", "number"],
];

function renderServe() {
  const result = state.results.serve;
  if (!result) return;
  const { infer, simulate, roofline } = result;
  $("#serve-headline").textContent = say(infer, "headline") || "";
  figures($("#serve-figures"), infer, SERVE_FIGURES);
  const per = infer.memory.per_gpu;
  const parts = Object.entries(per).filter(([k]) => k !== "total_bytes");
  const kvFree = Math.max(0, infer.memory.kv_budget_bytes - per.kv_cache_bytes);
  chart("chart-serve-memory", {
    title: { text: tr("web.serve.memory_chart", "memory per GPU and KV pool"), textStyle: { fontSize: 14 } },
    legend: { type: "scroll", bottom: 0 },
    grid: { left: 60, right: 30, top: 40, bottom: 60 },
    xAxis: { type: "category", data: [infer.gpu] },
    yAxis: { type: "value", name: "GiB" },
    series: [...parts.map(([k, v]) => ({ name: label(k), type: "bar", stack: "m", data: [+(v / GiB).toFixed(2)] })),
      { name: tr("web.serve.kv_free", "KV pool, free"), type: "bar", stack: "m", data: [+(kvFree / GiB).toFixed(2)] }],
  }, { header: ["component", "bytes"], rows: [...parts, ["kv_budget_bytes", infer.memory.kv_budget_bytes]] });
  renderRoofline(roofline);
  if (!simulate) {
    renderNotSimulated(result.engine);
    return;
  }
  const sweep = simulate.sweep || [simulate];
  const x = sweep.map((p) => p.workload.concurrency);
  chart("chart-serve-curves", {
    title: { text: tr("web.serve.curves", "simulated: throughput and latency vs concurrency"), textStyle: { fontSize: 14 } },
    tooltip: { trigger: "axis" },
    legend: { bottom: 0 },
    grid: { left: 60, right: 60, top: 50, bottom: 60 },
    xAxis: { type: "category", name: tr("web.serve.concurrency", "concurrency"), data: x },
    yAxis: [{ type: "value", name: "tok/s" }, { type: "value", name: "ms" }],
    series: [
      { name: tr("web.serve.throughput", "output tokens/s"), type: "line", data: sweep.map((p) => +p.throughput.output_tokens_per_s.toFixed(1)) },
      { name: "TTFT p50", type: "line", yAxisIndex: 1, data: sweep.map((p) => +(p.latency.ttft_s.p50 * 1e3).toFixed(2)) },
      { name: "TPOT p50", type: "line", yAxisIndex: 1, data: sweep.map((p) => +(p.latency.tpot_s.p50 * 1e3).toFixed(2)) },
    ],
  }, { header: ["concurrency", "output_tokens_per_s", "ttft_p50_s", "tpot_p50_s", "e2e_p50_s"],
    rows: sweep.map((p) => [p.workload.concurrency, p.throughput.output_tokens_per_s, p.latency.ttft_s.p50, p.latency.tpot_s.p50, p.latency.e2e_s.p50]) });
  renderTimeline(simulate);
}

function renderNotSimulated(engine) {
  const text = trf("web.serve.not_simulated", "the simulator does not model {engine}'s server: no curves or timeline for it",
    { engine });
  for (const id of ["chart-serve-curves", "chart-serve-timeline"]) {
    chart(id, { title: { text, left: "center", top: "middle", textStyle: { fontSize: 14, fontWeight: "normal" } } },
      { header: [], rows: [] });
  }
  $("#timeline-at").replaceChildren();
  $("#timeline-at").dataset.options = "";
  $("#timeline-note").textContent = text;
}

// The simulator's timeline of one sweep point (`suanli simulate … --timeline-points N --json` → timeline):
// bucketed by suanli (time-weighted means, simulate/timeline.py); drawn as step lines, one value per bucket.
const TIMELINE_POINTS = 300;

function renderTimeline(simulate) {
  const sweep = simulate.sweep || [simulate];
  const names = sweep.map((p) => String(p.workload.concurrency ?? p.workload.rate_per_s));
  const select = $("#timeline-at");
  if (select.dataset.options !== names.join(",")) {
    const keep = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(keep) ? keep : names[names.length - 1];
    select.dataset.options = names.join(",");
  }
  const point = sweep[Math.max(0, names.indexOf(select.value))];
  const timeline = point.timeline;
  if (!timeline) return;
  const col = Object.fromEntries(timeline.columns.map((c, i) => [c, i]));
  const line = (name, key, extra = {}) => ({ name, type: "line", step: "end", showSymbol: false,
    data: timeline.rows.map((r) => [r[col.start_s], r[col[key]]]), ...extra });
  $("#timeline-note").textContent = trf("web.timeline.note",
    "means over {buckets} time buckets of {bucket} each (from {raw} simulator rows, {steps} engine steps)",
    { buckets: timeline.rows.length, bucket: fmtSeconds(timeline.bucket_s), raw: timeline.raw_rows, steps: point.steps });
  chart("chart-serve-timeline", {
    title: { text: trf("web.timeline.title", "simulated timeline at concurrency {point}", { point: select.value }),
      textStyle: { fontSize: 14 } },
    tooltip: { trigger: "axis" },
    legend: { top: 34 },
    axisPointer: { link: [{ xAxisIndex: "all" }] },
    grid: [{ left: 60, right: 60, top: 90, height: 200 }, { left: 60, right: 60, top: 335, height: 100 }],
    xAxis: [{ type: "value", gridIndex: 0, min: 0, max: "dataMax", axisLabel: { show: false } },
      { type: "value", gridIndex: 1, min: 0, max: "dataMax", name: tr("web.timeline.time", "time (s)"), nameLocation: "middle",
        nameGap: 24, axisLabel: { formatter: (v) => `${+v.toPrecision(4)}` } }],
    yAxis: [{ type: "value", gridIndex: 0, name: tr("web.timeline.requests", "requests") },
      { type: "value", gridIndex: 0, name: "KV %", max: 100, splitLine: { show: false } },
      { type: "value", gridIndex: 1, name: tr("web.timeline.tokens_per_step", "prefill tokens per step") }],
    dataZoom: [{ type: "inside", xAxisIndex: [0, 1] }, { type: "slider", xAxisIndex: [0, 1], bottom: 8, height: 20 }],
    series: [
      line(tr("web.timeline.running", "running"), "running", { stack: "requests", areaStyle: {} }),
      line(tr("web.timeline.waiting", "waiting"), "waiting", { stack: "requests", areaStyle: {} }),
      { ...line(tr("web.timeline.kv", "KV cache used (%)"), "kv_utilization", { yAxisIndex: 1 }),
        data: timeline.rows.map((r) => [r[col.start_s], +(100 * r[col.kv_utilization]).toFixed(2)]) },
      line(tr("web.timeline.tokens_per_step", "prefill tokens per step"), "prefill_tokens_per_step", { xAxisIndex: 1, yAxisIndex: 2 }),
    ],
  }, { header: timeline.columns, rows: timeline.rows });
}

function renderRoofline(report) {
  const roofs = report.roofs;
  const ops = report.ops;
  const intensities = ops.map((o) => o.intensity_flops_per_byte).filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.min(...intensities, 0.1) / 2;
  const hi = Math.max(...intensities, roofs.ridge_flops_per_byte) * 2;
  const roof = [lo, roofs.ridge_flops_per_byte, hi].map((i) => [i, Math.min(roofs.peak_flops_per_s, i * roofs.memory_bandwidth_bytes_per_s) / 1e12]);
  const kinds = [...new Set(ops.map((o) => o.kind))];
  chart("chart-serve-roofline", {
    title: { text: tr("web.serve.roofline", "roofline of the forward pass (prefill)"), textStyle: { fontSize: 14 } },
    legend: { bottom: 0 },
    tooltip: { trigger: "item", formatter: (p) => (p.data && p.data.name ? `${p.data.name} (${p.data.group})<br>${fmtNumber(p.data.value[0])} FLOP/B, ${fmtNumber(p.data.value[1])} TFLOP/s<br>${boundText(p.data.bound)}` : p.seriesName) },
    grid: { left: 70, right: 40, top: 40, bottom: 70 },
    xAxis: { type: "log", name: "FLOP/byte", nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "log", name: "TFLOP/s" },
    series: [
      { name: tr("web.serve.roof", "roof"), type: "line", data: roof, symbol: "none", lineStyle: { width: 2 } },
      ...kinds.map((kind) => ({ name: label(kind), type: "scatter", symbolSize: 10,
        data: ops.filter((o) => o.kind === kind && o.intensity_flops_per_byte > 0 && Number.isFinite(o.intensity_flops_per_byte))
          .map((o) => ({ name: o.name, group: o.group, bound: o.bound,
            value: [o.intensity_flops_per_byte, o.achieved_flops_per_s / 1e12] })) })),
    ],
  }, { header: ["kernel", "group", "kind", "flops", "bytes", "intensity_flops_per_byte", "time_s", "bound"],
    rows: ops.map((o) => [o.name, o.group, o.kind, o.flops, o.bytes, o.intensity_flops_per_byte, o.time_s, o.bound]) });
}

// a kernel's bound ("compute" / "memory", the JSON's value): "compute-bound", or the catalogue's term.bound.* in zh
function boundText(bound) {
  return state.lang === "en" ? `${bound}-bound` : tr(`term.bound.${bound}`, `${bound}-bound`);
}

async function runPlan() {
  state.results.plan = await api("plan-train", { ...baseParams(), ...formParams("plan") });
}

function renderPlan() {
  const report = state.results.plan;
  if (!report) return;
  const best = report.best;
  $("#plan-headline").classList.add("ok");
  $("#plan-headline").textContent = best
    ? `${tr("web.plan.best", "best")}: ${best.gpus} × ${best.gpu}, tp ${best.layout.tp} · pp ${best.layout.pp} · dp ${best.layout.dp} · ZeRO-${best.layout.zero} — ${fmtSeconds(best.time.total_s)}, $${fmtNumber(best.cost.usd)}`
    : tr("web.plan.none", "no layout fits");
  const points = (list) => list.map((c) => ({ value: [(c.total_s ?? c.time.total_s) / 86400, c.usd ?? c.cost.usd], name: `${c.gpus} × ${c.gpu}` }));
  const front = (report.pareto || []).slice().sort((a, b) => a.total_s - b.total_s);
  chart("chart-plan", {
    title: { text: tr("web.plan.front", "time vs cost of the candidates"), textStyle: { fontSize: 14 } },
    legend: { bottom: 0 },
    tooltip: { trigger: "item", formatter: (p) => `${p.data.name}<br>${p.data.value[0].toFixed(2)} d, $${fmtNumber(p.data.value[1])}` },
    grid: { left: 70, right: 40, top: 40, bottom: 60 },
    xAxis: { type: "value", name: tr("web.plan.days", "days"), scale: true },
    yAxis: { type: "value", name: "USD", scale: true },
    series: [
      { name: tr("web.plan.candidates", "candidates"), type: "scatter", symbolSize: 10, data: points(report.candidates || []) },
      { name: tr("web.plan.pareto", "time–cost front"), type: "line", data: points(front) },
    ],
  }, { header: ["rank", "gpu", "gpus", "tp", "pp", "dp", "cp", "zero", "micro_batch", "recompute", "total_s", "usd"],
    rows: (report.candidates || []).map((c, i) => [i + 1, c.gpu, c.gpus, c.layout.tp, c.layout.pp, c.layout.dp, c.layout.cp, c.layout.zero, c.layout.micro_batch, c.layout.recompute, c.time.total_s, c.cost.usd]) });
  const head = el("tr", {}, ...["#", "gpu", "GPUs", "layout", "time", "cost", "MFU"].map((h, i) =>
    el("th", {}, tr(`web.plan.col${i}`, h))));
  const body = (report.candidates || []).map((c, i) => el("tr", {}, el("td", {}, i + 1), el("td", {}, c.gpu), el("td", {}, c.gpus),
    el("td", {}, planLayoutText(c.layout)),
    el("td", {}, fmtSeconds(c.time.total_s)), el("td", {}, `$${fmtNumber(c.cost.usd)}`), el("td", {}, FORMATS.percent(c.time.mfu))));
  $("#plan-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

// a training layout of plan-train's JSON (English values such as recompute "none") in the page's language
function planLayoutText(layout) {
  return trf("web.plan.layout", "tp {tp} · pp {pp} · dp {dp} · cp {cp} · ZeRO-{zero} · mb {micro_batch} · {recompute}",
    { ...layout, recompute: tr(`term.recompute.${layout.recompute}`, layout.recompute) });
}

async function runPlanServe() {
  state.results["plan-serve"] = await api("plan-serve", { ...baseParams(), ...formParams("plan-serve") });
}

function deploymentText(c) {
  return `tp ${c.tp} · ep ${c.ep} · ${tr("web.plan_serve.replicas", "replicas")} ${c.replicas}${c.pd ? ` · PD ${c.pd}` : ""}`;
}

function renderPlanServe() {
  const report = state.results["plan-serve"];
  if (!report) return;
  const best = report.best;
  const ms = (s) => +(s * 1e3).toFixed(2);
  const headline = $("#plan-serve-headline");
  headline.classList.toggle("ok", !!best);
  headline.textContent = best
    ? `${tr("web.plan.best", "best")}: ${best.gpus} × ${best.gpu}, ${deploymentText(best)} — $${fmtNumber(best.usd_per_hour)}/h, ` +
      `TTFT p90 ${fmtSeconds(best.latency.ttft_s.p90)}, TPOT p90 ${fmtSeconds(best.latency.tpot_s.p90)}`
    : tr("web.plan_serve.none", "no deployment meets the targets") + ": " +
      Object.entries(report.rejected || {}).map(([why, n]) => `${label(why)} ${n}`).join(", ");
  const form = formParams("plan-serve");
  const candidates = report.candidates || [];
  const point = (c) => ({ value: [ms(c.latency.ttft_s.p90), ms(c.latency.tpot_s.p90)], name: `${c.gpus} × ${c.gpu}`,
    usd: c.usd_per_hour, layout: deploymentText(c) });
  const targets = [];
  if (form["slo-ttft-ms"]) targets.push({ xAxis: +form["slo-ttft-ms"], name: "TTFT" });
  if (form["slo-tpot-ms"]) targets.push({ yAxis: +form["slo-tpot-ms"], name: "TPOT" });
  chart("chart-plan-serve", {
    title: { text: tr("web.plan_serve.chart", "candidates' 90th-percentile latency against the targets"), textStyle: { fontSize: 14 } },
    legend: { bottom: 0 },
    tooltip: { trigger: "item", formatter: (p) => (p.data && p.data.layout
      ? `${p.data.name}, ${p.data.layout}<br>TTFT p90 ${p.data.value[0]} ms, TPOT p90 ${p.data.value[1]} ms<br>$${fmtNumber(p.data.usd)}/h`
      : p.name || p.seriesName) },
    grid: { left: 70, right: 40, top: 40, bottom: 60 },
    // from 0 to past the targets, so the box the candidates must sit in is drawn
    xAxis: { type: "value", name: "TTFT p90 (ms)", nameLocation: "middle", nameGap: 26, min: 0,
      max: (v) => Math.ceil(1.1 * Math.max(v.max, +form["slo-ttft-ms"] || 0)) },
    yAxis: { type: "value", name: "TPOT p90 (ms)", min: 0, max: (v) => Math.ceil(1.1 * Math.max(v.max, +form["slo-tpot-ms"] || 0)) },
    series: [
      { name: tr("web.plan.candidates", "candidates"), type: "scatter", symbolSize: 11, data: candidates.map(point),
        markLine: targets.length ? { symbol: "none", lineStyle: { type: "dashed", color: "#b3261e" },
          label: { formatter: tr("web.plan_serve.target", "target") }, data: targets } : undefined },
      { name: tr("web.plan.best", "best"), type: "scatter", symbol: "diamond", symbolSize: 18, data: best ? [point(best)] : [] },
    ],
  }, { header: ["rank", "gpu", "gpus", "tp", "ep", "replicas", "pd", "usd_per_hour", "ttft_p90_s", "tpot_p90_s", "output_tokens_per_s"],
    rows: candidates.map((c, i) => [i + 1, c.gpu, c.gpus, c.tp, c.ep, c.replicas, c.pd ?? "", c.usd_per_hour,
      c.latency.ttft_s.p90, c.latency.tpot_s.p90, c.throughput.output_tokens_per_s]) });
  const head = el("tr", {}, ...["#", "gpu", "GPUs", "deployment", "$/h", "TTFT p90", "TPOT p90", "output tokens/s"].map((h, i) =>
    el("th", {}, tr(`web.plan_serve.col${i}`, h))));
  const body = candidates.map((c, i) => el("tr", {}, el("td", {}, i + 1), el("td", {}, c.gpu), el("td", {}, c.gpus),
    el("td", {}, deploymentText(c)), el("td", {}, `$${fmtNumber(c.usd_per_hour)}`), el("td", {}, fmtSeconds(c.latency.ttft_s.p90)),
    el("td", {}, fmtSeconds(c.latency.tpot_s.p90)), el("td", {}, fmtNumber(c.throughput.output_tokens_per_s))));
  $("#plan-serve-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

async function runGlossary() {
  const term = formOf("glossary").elements.term.value.trim();
  const [entry, index] = await Promise.all([
    term ? api(`explain/${encodeURIComponent(term)}`, { lang: state.lang }) : Promise.resolve(null),
    state.results.glossaryIndex ? Promise.resolve(state.results.glossaryIndex) : api("explain", { list: "true" })]);
  state.results.glossaryIndex = index;
  state.results.glossary = entry;
}

function renderGlossary() {
  const entry = state.results.glossary;
  const index = state.results.glossaryIndex;
  const zh = state.lang === "zh";
  const parts = [];
  if (entry) {
    const example = entry.example || {};
    parts.push(el("h2", {}, zh ? entry.name_zh : entry.name_en, el("small", {}, `  ${zh ? entry.name_en : entry.name_zh} · ${entry.term}`)),
      el("p", { class: "entry" }, entry[state.lang] || entry.en),
      el("p", { class: "example", title: `${example.command} → ${example.path}` },
        el("strong", {}, tr("web.glossary.example", "Live example") + ": "), example[state.lang] || example.en || "",
        el("br"), el("code", {}, `${example.command}  → ${example.path}`)));
  }
  if (index && index.terms) {
    parts.push(el("div", { class: "terms" }, ...index.terms.map((t) => el("button", { type: "button", class: "term",
      title: (t.aliases || []).join(", "), on: { click: () => { formOf("glossary").elements.term.value = t.term; compute(); } } },
      zh ? t.name_zh : t.name_en))));
  }
  $("#glossary-entry").replaceChildren(...parts);
}

// ---- wiring ----------------------------------------------------------------------------------------------------
function rerender() {
  try { VIEWS[state.view].render(); } catch (e) { showError(e); }
}

// After a failed request nothing of the previous answer stays under the error line: the view's charts are cleared
// and hidden (class "failed"), its tables, headline, figures and advice emptied, and its result forgotten.
function clearView(view) {
  const section = $(`#view-${view}`);
  section.classList.add("failed");
  for (const node of $$(".chart", section)) {
    state.charts[node.id]?.clear();
    delete node.dataset.rendered;
    delete state.tables[node.id];
  }
  for (const node of $$(".headline, .figures, .advice, table, #timeline-note, #glossary-entry", section)) node.replaceChildren();
  delete state.results[view];
}

async function compute() {
  showError(null);
  $("#busy").hidden = false;
  writeUrl();
  const view = state.view;
  try {
    await VIEWS[view].run();
    if ($(`#view-${view}`).classList.contains("failed")) {
      $(`#view-${view}`).classList.remove("failed");
      Object.values(state.charts).forEach((c) => c.resize()); // shown again: their boxes have a size once more
    }
    rerender();
  } catch (e) {
    showError(e);
    clearView(view);
  } finally {
    $("#busy").hidden = true;
    document.body.dataset.ready = state.view;
  }
}

function showView(view) {
  state.view = view;
  $$(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
  $$("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  Object.values(state.charts).forEach((c) => c.resize());
}

async function loadPickers(gpuFromUrl) {
  const [models, gpus] = await Promise.all([api("models", {}), api("gpus", {})]);
  $("#model-list").replaceChildren(...models.models.map((m) => el("option", { value: m.model }, `${m.family}`)));
  $("#gpu").replaceChildren(...gpus.gpus.map((g) => el("option", { value: g.gpu }, `${g.gpu} — ${fmtBytes(g.memory_bytes)}`)));
  $("#gpu").value = gpus.gpus.some((g) => g.gpu === gpuFromUrl) ? gpuFromUrl : "h100-sxm-80gb";
}

async function main() {
  const gpuFromUrl = readUrl();
  $$("#tabs button").forEach((b) => b.addEventListener("click", () => { showView(b.dataset.view); compute(); }));
  $$("#langs button").forEach((b) => b.addEventListener("click", () => setLang(b.dataset.lang)));
  $$(".view form").forEach((f) => f.addEventListener("submit", (e) => { e.preventDefault(); compute(); }));
  $("#fit-filter").addEventListener("input", rerender);
  $("#fit-single").addEventListener("change", rerender);
  $("#timeline-at").addEventListener("change", rerender);
  $("#model").addEventListener("change", compute);
  $("#gpu").addEventListener("change", compute);
  $("#share").addEventListener("click", () => { writeUrl(); navigator.clipboard?.writeText(location.href).catch(() => {}); });
  window.addEventListener("resize", () => Object.values(state.charts).forEach((c) => c.resize()));
  showView(state.view);
  try { await loadPickers(gpuFromUrl); } catch (e) { showError(e); }
  await setLang(state.lang, false);
  await compute();
}

document.addEventListener("DOMContentLoaded", main);
