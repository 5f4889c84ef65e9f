// #/playground: optimizers racing on a 2-D test function (POST /v1/playground). The form
// is built from GET /v1/catalog (each optimizer's and schedule's params); any change
// re-runs the request after a pause (debounced) and redraws. The API returns paths, not
// the surface, so the contour under them is computed here on a coarse grid from the
// functions' formulas (the same ones as service/playground/functions.py).

import { api } from "../api.js";
import { h, clear, fmtNum, notice, uid } from "../dom.js";
import { lineChart } from "../chart.js";
import { ensureLabCss, COLORS } from "./sweeps.js";

const DEBOUNCE_MS = 400;
const GRID = 140; // grid points per axis for the contour
const rad = (d) => (d * Math.PI) / 180;
// f(x, y) for each surface, with its parameters (p: the request's function object).
const SURFACES = {
  rosenbrock: () => (x, y) => (1 - x) ** 2 + 100 * (y - x * x) ** 2,
  beale: () => (x, y) => (1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2 + (2.625 - x + x * y ** 3) ** 2,
  himmelblau: () => (x, y) => (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
  rastrigin: () => (x, y) => 20 + x * x - 10 * Math.cos(2 * Math.PI * x) + y * y - 10 * Math.cos(2 * Math.PI * y),
  saddle: (p) => { const c = Math.cos(rad(p.angle || 0)), s = Math.sin(rad(p.angle || 0));
    return (x, y) => (c * x + s * y) ** 2 - (c * y - s * x) ** 2; },
  monkey_saddle: () => (x, y) => x ** 3 - 3 * x * y * y,
  quadratic: (p) => { const c = Math.cos(rad(p.angle || 0)), s = Math.sin(rad(p.angle || 0)), k = p.condition_number ?? 10;
    return (x, y) => 0.5 * ((c * x + s * y) ** 2 + k * (c * y - s * x) ** 2); },
};
const EXTRA = { quadratic: [["condition_number", 10], ["angle", 0]], saddle: [["angle", 0]] };
const DEFAULT_RUNS = [
  { name: "sgd", values: { lr: "0.0019" } },
  { name: "sgd", values: { lr: "0.0019", momentum: "0.9" } },
  { name: "adam", values: { lr: "0.1" } },
];

export async function render(root) {
  ensureLabCss();
  let catalog;
  try {
    catalog = await api.get("/v1/catalog");
  } catch (e) {
    clear(root, h("h1", null, "Optimizer playground"), notice(`Could not load the catalog: ${e.message}`, "error"));
    return () => {};
  }
  const optimizers = catalog.optimizers || [];
  const schedules = catalog.schedules || [];
  let timer = null, seq = 0, gone = false, pathChart = null;

  // -- the form ---------------------------------------------------------------------
  const fnSelect = h("select", { id: uid("pg") }, Object.keys(SURFACES).map((n) => h("option", { value: n, selected: n === "rosenbrock" }, n)));
  const fnParams = h("div", { class: "pg-params" });
  const num = (label, value, extra = {}) => {
    const input = h("input", { type: "text", inputmode: "decimal", id: uid("pg"), value, ...extra });
    return { input, el: h("div", { class: "pg-field" }, h("label", { for: input.id }, label), input) };
  };
  const startX = num("start x (blank: default)", "");
  const startY = num("start y (blank: default)", "");
  const steps = num("steps per run", "500", { inputmode: "numeric" });
  const tol = num("tolerance", "0.01");
  const runsBox = h("div");
  const addBtn = h("button", { type: "button", onclick: () => { addRun({ name: "adam", values: { lr: "0.01" } }); changed(); } }, "+ add optimizer");
  const status = h("p", { role: "status", class: "muted", dataset: { testid: "playground-status" } });
  const errors = h("div", { class: "pg-error", role: "alert" });
  const form = h("form", { dataset: { testid: "playground-form" }, onsubmit: (e) => { e.preventDefault(); run(); } },
    h("div", { class: "pg-params" }, h("div", { class: "pg-field" }, h("label", { for: fnSelect.id }, "surface"), fnSelect),
      startX.el, startY.el, steps.el, tol.el),
    fnParams, runsBox, h("div", { class: "lab-toolbar" }, addBtn, h("button", { type: "submit" }, "Run now")), errors);
  const canvas = h("canvas", { width: 640, height: 640, role: "img", "aria-label": "Contour of the surface with each optimizer's path" });
  const legend = h("ul", { class: "lab-legend pg-legend", dataset: { testid: "trajectory-legend" } });
  const valuesBox = h("div", { class: "lab-chart" });
  const title = h("p", { class: "muted" });
  clear(root, h("h1", null, "Optimizer playground"),
    h("div", { class: "lab-grid two" },
      h("section", null, h("h2", null, "Setup"), form),
      h("section", null, h("h2", null, "Paths"), status, title,
        h("div", { class: "pg-canvas-wrap", dataset: { testid: "playground-chart" } }, canvas), legend, valuesBox)));

  function renderFnParams() {
    const extra = EXTRA[fnSelect.value] || [];
    clear(fnParams, extra.map(([k, d]) => { const f = num(k, String(d)); f.input.dataset.param = k; return f.el; }));
  }
  fnSelect.addEventListener("change", () => { renderFnParams(); changed(); });
  renderFnParams();

  // One run: an optimizer and a schedule, each with the catalog's params as inputs.
  const runs = [];
  function paramInputs(spec, values) {
    return (spec.params || []).map((p) => {
      const id = uid("pg");
      const t = String(p.type);
      let input;
      if (t === "boolean") input = h("input", { type: "checkbox", id, checked: values[p.name] ?? Boolean(p.default) });
      else if (t.startsWith("boolean")) input = h("select", { id }, ["", "true", "false"].map((v) => h("option", { value: v }, v || "default")));
      else input = h("input", { type: "text", id, value: values[p.name] ?? (p.name === "lr" ? String(p.default) : ""),
        placeholder: Array.isArray(p.default) ? p.default.join(", ") : p.default === null || p.default === undefined ? "" : String(p.default),
        inputmode: t.startsWith("number") || t.startsWith("integer") ? "decimal" : null });
      return { p, input, el: h("div", { title: p.description || "" }, h("label", { for: id }, p.name), input) };
    });
  }
  function readParams(list) {
    const out = {};
    for (const { p, input } of list) {
      if (input.type === "checkbox") { if (input.checked !== Boolean(p.default)) out[p.name] = input.checked; continue; }
      const raw = input.value.trim();
      if (raw === "") continue;
      if (input.tagName === "SELECT") { out[p.name] = raw === "true"; continue; }
      const t = String(p.type);
      if (t === "array") out[p.name] = raw.split(/[,\s]+/).filter(Boolean).map((v) => (Number.isFinite(Number(v)) ? Number(v) : v));
      else if (t.startsWith("number") || t.startsWith("integer")) out[p.name] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
      else out[p.name] = raw; // a string field; the server names any bad value
    }
    return out;
  }
  function addRun(init) {
    if (runs.length >= 10) return;
    const r = { box: h("fieldset", { class: "pg-run" }) };
    const opt = h("select", { id: uid("pg") }, optimizers.map((o) => h("option", { value: o.name, selected: o.name === init.name }, o.name)));
    const sch = h("select", { id: uid("pg") }, schedules.map((o) => h("option", { value: o.name, selected: o.name === "constant" }, o.name)));
    const optBox = h("div", { class: "pg-params" }), schBox = h("div", { class: "pg-params" });
    const fill = (values = {}) => {
      r.opt = paramInputs(optimizers.find((o) => o.name === opt.value) || { params: [] }, values);
      clear(optBox, r.opt.map((x) => x.el));
    };
    const fillSch = () => {
      r.sch = paramInputs(schedules.find((o) => o.name === sch.value) || { params: [] }, {});
      clear(schBox, r.sch.map((x) => x.el));
    };
    opt.addEventListener("change", () => fill());
    sch.addEventListener("change", fillSch);
    fill(init.values);
    fillSch();
    r.read = () => ({ optimizer: { name: opt.value, ...readParams(r.opt) }, schedule: { name: sch.value, ...readParams(r.sch) } });
    const remove = h("button", { type: "button", "aria-label": "remove this optimizer", onclick: () => {
      if (runs.length <= 1) return;
      runs.splice(runs.indexOf(r), 1);
      r.box.remove();
      relabel();
      changed();
    } }, "remove");
    r.legend = h("legend");
    clear(r.box, r.legend, h("div", { class: "pg-params" },
      h("div", { class: "pg-field" }, h("label", { for: opt.id }, "optimizer"), opt),
      h("div", { class: "pg-field" }, h("label", { for: sch.id }, "schedule"), sch)), optBox,
    h("details", null, h("summary", null, "schedule settings"), schBox), remove);
    runs.push(r);
    runsBox.append(r.box);
    relabel();
  }
  function relabel() {
    runs.forEach((r, i) => clear(r.legend, h("span", { class: "swatch", style: { background: COLORS[i % COLORS.length] } }), ` run ${i + 1}`));
    addBtn.disabled = runs.length >= 10;
  }
  DEFAULT_RUNS.forEach(addRun);

  // -- the request --------------------------------------------------------------------
  function request() {
    const fn = { name: fnSelect.value };
    for (const input of fnParams.querySelectorAll("input")) if (input.value.trim() !== "") fn[input.dataset.param] = Number(input.value);
    const body = { function: fn, steps: Number(steps.input.value), tolerance: Number(tol.input.value), runs: runs.map((r) => r.read()) };
    const sx = startX.input.value.trim(), sy = startY.input.value.trim();
    if (sx !== "" || sy !== "") body.start = [Number(sx), Number(sy)];
    return body;
  }
  function changed() {
    clearTimeout(timer);
    timer = setTimeout(run, DEBOUNCE_MS);
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);

  async function run() {
    clearTimeout(timer);
    const mine = ++seq; // answers to older requests are dropped
    status.textContent = "running…";
    let res;
    try {
      res = await api.post("/v1/playground", request());
    } catch (e) {
      if (gone || mine !== seq) return;
      status.textContent = "";
      const extra = (e.fields || []).filter((f) => !String(e.message).includes(String(f.message)));
      clear(errors, h("p", null, e.message), extra.length
        ? h("ul", null, extra.map((f) => h("li", null, `${f.field}: ${f.message}`))) : null);
      return;
    }
    if (gone || mine !== seq) return;
    clear(errors);
    status.textContent = `${res.runs.length} runs × up to ${res.steps} steps`;
    title.textContent = `${res.title}: ${res.formula}`;
    draw(res);
  }

  // -- drawing --------------------------------------------------------------------------
  function draw(res) {
    const [x0, x1] = res.window.x, [y0, y1] = res.window.y;
    const W = 640, H = Math.round(Math.min(760, Math.max(360, (W * (y1 - y0)) / (x1 - x0))));
    const dpr = window.devicePixelRatio || 1;
    canvas.width = W * dpr;
    canvas.height = H * dpr;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const px = (x) => ((x - x0) / (x1 - x0)) * W, py = (y) => H - ((y - y0) / (y1 - y0)) * H;
    drawSurface(ctx, SURFACES[res.function.name](res.function), x0, x1, y0, y1, W, H);
    for (const m of res.saddle_points || []) mark(ctx, px(m.x), py(m.y), "×", "#fff");
    for (const m of res.minima || []) mark(ctx, px(m.x), py(m.y), m.kind === "global" ? "★" : "·", "#fff");
    res.runs.forEach((r, i) => {
      const pts = r.trajectory.points;
      ctx.strokeStyle = COLORS[i % COLORS.length];
      ctx.lineWidth = 2;
      ctx.beginPath();
      pts.forEach(([x, y], k) => (k ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
      ctx.stroke();
      const [ex, ey] = pts[pts.length - 1];
      mark(ctx, px(ex), py(ey), r.status === "diverged" ? "✕" : "●", COLORS[i % COLORS.length]);
    });
    mark(ctx, px(res.start[0]), py(res.start[1]), "○", "#000");
    // The window's extents, so the picture has a scale (x along the bottom, y up the left).
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#fff";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    ctx.fillText(`x ${fmtNum(x0)} · y ${fmtNum(y0)}`, 4, H - 3);
    ctx.textAlign = "right";
    ctx.fillText(`x ${fmtNum(x1)}`, W - 4, H - 3);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(`y ${fmtNum(y1)}`, 4, 3);
    canvas.setAttribute("aria-label", `${res.title}: ${res.runs.length} optimizer paths from (${fmtNum(res.start[0])}, ${fmtNum(res.start[1])})`);
    clear(legend, res.runs.map((r, i) => h("li", { dataset: { testid: "trajectory-legend-item", status: r.status } },
      h("span", { class: "swatch", style: { background: COLORS[i % COLORS.length] } }), h("strong", null, r.label), " — ", outcome(r, res))));
    drawValues(res);
  }
  function outcome(r, res) {
    if (r.status === "diverged") return `diverged at step ${r.diverged_step}${r.reason ? ` (${r.reason})` : ""}`;
    if (r.reached_step !== null && r.reached_step !== undefined) {
      const m = res.minima[r.reached_minimum] || {};
      return `reached the ${m.kind || ""} minimum (${fmtNum(m.x)}, ${fmtNum(m.y)}) at step ${r.reached_step}`;
    }
    return `f = ${fmtNum(r.final_value)} after ${r.steps_taken} steps at (${fmtNum(r.final_point[0])}, ${fmtNum(r.final_point[1])})`;
  }
  // f along each path against the step (log y when every value is positive).
  function drawValues(res) {
    if (pathChart) pathChart.destroy();
    const n = Math.max(...res.runs.map((r) => r.trajectory.values.length));
    const xs = Array.from({ length: n }, (_, i) => i);
    const ys = res.runs.map((r) => xs.map((i) => r.trajectory.values[i] ?? null));
    const positive = ys.every((s) => s.every((v) => v === null || v > 0));
    // On a log axis, values can reach 1e-300 near a minimum: uPlot's log ticks then blow
    // up (and denormals reach 0). Floor them at 1e-16, far below anything readable.
    if (positive) ys.forEach((s) => s.forEach((v, i) => { if (v !== null && v < 1e-16) s[i] = 1e-16; }));
    pathChart = lineChart(valuesBox, { title: "f along each path", xLabel: "step", logY: positive, height: 220, testid: "playground-values",
      series: res.runs.map((r, i) => ({ label: r.label, color: COLORS[i % COLORS.length] })) });
    pathChart.setData(xs, ys);
  }

  changed();
  return () => {
    gone = true;
    clearTimeout(timer);
    if (pathChart) pathChart.destroy();
  };
}

function mark(ctx, x, y, glyph, color) {
  ctx.font = "bold 16px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.lineWidth = 3;
  ctx.strokeStyle = color === "#000" ? "#fff" : "#000";
  ctx.strokeText(glyph, x, y);
  ctx.fillStyle = color;
  ctx.fillText(glyph, x, y);
}

// Viridis-like stops; the surface is drawn in 14 bands (a filled contour), log-scaled
// where its values span decades, as the server's picture does.
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function drawSurface(ctx, f, x0, x1, y0, y1, W, H) {
  const vals = new Float64Array(GRID * GRID);
  for (let j = 0; j < GRID; j++) for (let i = 0; i < GRID; i++) {
    vals[j * GRID + i] = f(x0 + ((i + 0.5) / GRID) * (x1 - x0), y1 - ((j + 0.5) / GRID) * (y1 - y0));
  }
  const sorted = Array.from(vals).filter(Number.isFinite).sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const lo = sorted[0], hi = sorted[sorted.length - 1];
  const log = lo >= 0 && q(0.05) > 0 && q(0.95) >= 100 * q(0.05);
  const floor = log ? Math.max(q(0.01), 1e-12) : 0;
  const t = log ? (v) => Math.log10(Math.max(v, floor)) : (v) => v;
  const a = t(log ? floor : lo), b = t(hi);
  const img = ctx.createImageData(GRID, GRID);
  for (let k = 0; k < vals.length; k++) {
    const frac = Number.isFinite(vals[k]) && b > a ? Math.floor(((t(vals[k]) - a) / (b - a)) * 14) / 14 : 0;
    const s = Math.min(STOPS.length - 1.001, Math.max(0, frac) * (STOPS.length - 1));
    const c0 = STOPS[Math.floor(s)], c1 = STOPS[Math.floor(s) + 1], w = s - Math.floor(s);
    for (let c = 0; c < 3; c++) img.data[k * 4 + c] = c0[c] + (c1[c] - c0[c]) * w;
    img.data[k * 4 + 3] = 255;
  }
  // Draw the small grid scaled up to the canvas (smoothing off keeps the bands crisp).
  const off = document.createElement("canvas");
  off.width = GRID;
  off.height = GRID;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, W, H);
}
