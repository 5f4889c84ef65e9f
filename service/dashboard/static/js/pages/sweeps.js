// #/sweeps: the user's sweeps and comparisons (GET /v1/sweeps), newest first, with
// their status, kind, trials done / total and best objective so far. Running ones are
// re-read every few seconds (the list has no stream of its own).

import { api } from "../api.js";
import { h, clear, fmtNum, fmtTime, statusBadge, notice } from "../dom.js";

const PAGE = 50;
const REFRESH_MS = 5000;

/** Load lab.css once (index.html may not link it): same origin, no external request. */
export function ensureLabCss() {
  if (document.querySelector('link[data-lab-css]')) return;
  document.head.append(h("link", { rel: "stylesheet", href: "/static/lab.css", dataset: { labCss: "" } }));
}

/** Trials that have ended (any state but queued/running). */
function trialsDone(counts) {
  if (!counts) return 0;
  return (counts.complete || 0) + (counts.pruned || 0) + (counts.failed || 0) + (counts.cancelled || 0);
}

function row(s) {
  const total = s.max_trials ?? "?";
  const best = s.best
    ? h("span", null, fmtNum(s.best.value), " ",
        h("small", { class: "muted" }, s.best.label ? `(${s.best.label})` : `(#${s.best.number})`))
    : "—";
  return h(
    "tr",
    { dataset: { testid: "sweep-row", id: s.id } },
    h("td", null, h("a", { href: `#/sweeps/${encodeURIComponent(s.id)}` }, s.name || s.id)),
    h("td", null, s.kind === "comparison" ? "comparison" : "sweep"),
    h("td", null, statusBadge(s.status, "sweep-row-status")),
    h("td", { class: "num" }, `${trialsDone(s.counts)} / ${total}`,
      s.counts && s.counts.running ? h("small", { class: "muted" }, ` (${s.counts.running} running)`) : null),
    h("td", null, s.objective ? `${s.objective.metric} (${s.objective.direction})` : "—"),
    h("td", { class: "num" }, best),
    h("td", null, fmtTime(s.created_at)),
  );
}

export async function render(root, params, ctx) {
  ensureLabCss();
  let offset = Math.max(0, Number(params.offset) || 0);
  let kind = params.kind === "sweep" || params.kind === "comparison" ? params.kind : "";
  let timer = null;
  let gone = false;

  const body = h("div", { class: "lab-list" });
  const kindSelect = h(
    "select",
    { id: "sweeps-kind", onchange: () => { kind = kindSelect.value; offset = 0; load(); } },
    h("option", { value: "", selected: kind === "" }, "all"),
    h("option", { value: "sweep", selected: kind === "sweep" }, "sweeps"),
    h("option", { value: "comparison", selected: kind === "comparison" }, "comparisons"),
  );
  clear(
    root,
    h("h1", null, "Sweeps and comparisons"),
    h("p", { class: "muted" },
      "Start one with ", h("code", null, "descent sweep SPEC.yaml"), " or POST /v1/sweeps, /v1/comparisons."),
    h("div", { class: "lab-toolbar" }, h("label", { for: "sweeps-kind" }, "Show "), kindSelect),
    body,
  );

  async function load() {
    clearTimeout(timer);
    let page;
    try {
      page = await api.get("/v1/sweeps", { limit: PAGE, offset, kind: kind || null });
    } catch (e) {
      if (!gone) clear(body, notice(`Could not load sweeps: ${e.message}`, "error"));
      return;
    }
    if (gone) return;
    const items = page.items || [];
    if (!items.length) {
      clear(body, notice(offset ? "No more sweeps." : "No sweeps yet.", "info", "sweeps-empty"));
    } else {
      clear(
        body,
        h("div", { class: "table-scroll" },
          h("table", { class: "lab-table", dataset: { testid: "sweeps-table" } },
            h("thead", null, h("tr", null,
              ["name", "kind", "status", "trials done", "objective", "best", "created"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", null, items.map(row)))),
        pager(page),
      );
    }
    // Keep counts moving while anything runs.
    if (items.some((s) => s.status === "running")) timer = setTimeout(load, REFRESH_MS);
  }

  function pager(page) {
    if (page.total <= PAGE) return null;
    const prev = h("button", { type: "button", disabled: offset === 0,
      onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "← newer");
    const next = h("button", { type: "button", disabled: offset + PAGE >= page.total,
      onclick: () => { offset += PAGE; load(); } }, "older →");
    return h("div", { class: "lab-toolbar" }, prev, ` ${offset + 1}–${Math.min(offset + PAGE, page.total)} of ${page.total} `, next);
  }

  await load();
  return () => {
    gone = true;
    clearTimeout(timer);
  };
}

// -- pieces of the sweep page (sweep.js), drawn from plain data -------------------------
// They live here so that sweep.js stays short; nothing above uses them.

export const COLORS = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
  "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
];
const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

// Student's t, 97.5% quantile, by degrees of freedom (1–30; then a few steps to 1.96):
// the 95% interval of a mean over n seeds is mean ± t(n−1)·s/√n, as the API's table.
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
  2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06,
  2.056, 2.052, 2.048, 2.045, 2.042];
function t975(df) {
  if (df <= 30) return T975[df - 1];
  return df <= 40 ? 2.021 : df <= 60 ? 2.0 : df <= 120 ? 1.98 : 1.96;
}

/** Per configuration (trial), the mean of the objective over its seeds at each epoch and
 * the 95% CI (null where fewer than 2 seeds have a value). At most 20 configurations. */
export function bandsOf(trials, curves) {
  const byTrial = new Map();
  let maxEpoch = 0;
  for (const c of curves.values()) {
    if (!byTrial.has(c.trial)) byTrial.set(c.trial, []);
    byTrial.get(c.trial).push(c.points);
    for (const e of c.points.keys()) maxEpoch = Math.max(maxEpoch, e);
  }
  const xs = Array.from({ length: maxEpoch }, (_, i) => i + 1);
  const configs = [...byTrial.keys()].sort((a, b) => a - b).slice(0, 20).map((n) => {
    const runs = byTrial.get(n);
    const mean = [], low = [], high = [];
    for (const e of xs) {
      const v = runs.map((p) => finite(p.get(e) ?? null)).filter((x) => x !== null);
      if (!v.length) { mean.push(null); low.push(null); high.push(null); continue; }
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      mean.push(m);
      if (v.length < 2) { low.push(null); high.push(null); continue; }
      const sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
      const half = t975(v.length - 1) * sd / Math.sqrt(v.length);
      low.push(m - half);
      high.push(m + half);
    }
    const t = trials.get(n);
    const seeds = runs.filter((p) => [...p.values()].some((x) => finite(x) !== null)).length;
    return { number: n, label: (t && t.label) || `#${n}`, mean, low, high, seeds };
  });
  return { xs, configs };
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

/** One axis: maps a value to [0, 1] (null: not drawable), with its tick labels. */
function axisFor(key, values, spaceDist) {
  const present = values.filter((v) => v !== undefined);
  const nums = present.map(finite);
  if (present.length && nums.every((v) => v !== null)) {
    let lo = Math.min(...nums), hi = Math.max(...nums);
    const d = spaceDist || {};
    const log = lo > 0 && (Boolean(d.loguniform) || (Boolean(d.int) && d.log) || hi / lo >= 1000);
    const f = log ? Math.log10 : (x) => x;
    if (lo === hi) { lo = lo - (Math.abs(lo) || 1) * 0.5; hi = hi + (Math.abs(hi) || 1) * 0.5; }
    const a = f(lo), b = f(hi);
    const pos = (v) => (finite(v) === null || (log && v <= 0) ? null : (f(v) - a) / (b - a));
    const ticks = [[lo, 0], [hi, 1]];
    if (log) ticks.push([10 ** ((a + b) / 2), 0.5]); else ticks.push([(lo + hi) / 2, 0.5]);
    return { pos, ticks: ticks.map(([v, p]) => [fmtNum(v, 3), p]), log };
  }
  const cats = [...new Set(present.map((v) => String(v)))].sort();
  const pos = (v) => (v === undefined ? null : cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1));
  const shown = cats.length <= 10 ? cats : cats.filter((_, i) => i % Math.ceil(cats.length / 10) === 0);
  return { pos, ticks: shown.map((c) => [c.length > 14 ? `${c.slice(0, 13)}…` : c, pos(c)]), log: false };
}

/** Parallel coordinates as SVG: one axis per searched parameter and one for the
 * objective; a line per complete trial (darker = better) and per pruned one (grey,
 * dashed). rows: ranked trials {number, label, params, state, v}. */
export function parallelCoords(rows, keys, sweep, metric) {
  const drawn = rows.filter((r) => (r.state === "complete" || r.state === "pruned") && finite(r.v) !== null);
  if (!drawn.length || !keys.length) {
    return notice(keys.length ? "No complete or pruned trial with a value yet." : "No searched parameters.", "info");
  }
  const space = (sweep.spec && sweep.spec.space) || {};
  const axes = [...keys.map((k) => ({ name: k, ax: axisFor(k, drawn.map((r) => r.params[k]), space[k]), get: (r) => r.params[k] })),
    { name: metric, ax: axisFor(metric, drawn.map((r) => r.v), null), get: (r) => r.v }];
  const W = Math.max(560, 150 * axes.length), H = 320, L = 60, R = 70, T = 46, B = 24;
  const x = (i) => L + (i * (W - L - R)) / (axes.length - 1);
  const y = (p) => T + (1 - p) * (H - T - B);
  const complete = drawn.filter((r) => r.state === "complete");
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "parcoords",
    "aria-label": `Parallel coordinates: ${drawn.length} trials over ${keys.join(", ")} and ${metric}` });
  // Pruned first, then complete worst → best so that the best is drawn on top.
  const order = [...drawn.filter((r) => r.state !== "complete"), ...complete.slice().reverse()];
  for (const r of order) {
    let d = "";
    let pen = false;
    axes.forEach((a, i) => {
      const p = a.ax.pos(a.get(r));
      if (p === null) { pen = false; return; } // a conditional parameter this trial lacks
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(p).toFixed(1)} `;
      pen = true;
    });
    const rank = complete.indexOf(r);
    const light = complete.length > 1 ? 28 + (45 * rank) / (complete.length - 1) : 35;
    const stroke = r.state === "complete" ? `hsl(215, 75%, ${light}%)` : "#b5b5b5";
    svg.append(s("path", { d, fill: "none", stroke, "stroke-width": rank === 0 ? 2.5 : 1.4,
      "stroke-dasharray": r.state === "pruned" ? "5 4" : null, "data-trial": r.number },
    s("title", null, `${r.label || `#${r.number}`} (${r.state}): ${metric} ${fmtNum(r.v)}`)));
  }
  axes.forEach((a, i) => {
    const short = a.name.length > 22 ? `…${a.name.slice(-21)}` : a.name;
    svg.append(s("g", { class: "axis" },
      s("line", { x1: x(i), x2: x(i), y1: T, y2: H - B, stroke: "#444" }),
      s("text", { x: x(i), y: T - 22, "text-anchor": "middle", class: "axis-name" }, s("title", null, a.name), short),
      a.ax.log ? s("text", { x: x(i), y: T - 9, "text-anchor": "middle", class: "axis-note" }, "log") : null,
      a.ax.ticks.map(([label, p]) => s("text", { x: x(i) + 5, y: y(p) + 4, class: "tick" }, label))));
  });
  return h("figure", { class: "parcoords-fig" }, svg,
    h("figcaption", { class: "muted" }, `${complete.length} complete (darker = better), ${drawn.length - complete.length} pruned (grey, dashed).`));
}

/** fANOVA importance as bars, with a warning when it rests on few trials. */
export function importanceView(imp) {
  const few = (imp.trials_used || 0) < 10;
  return h("div", null,
    h("p", { class: few ? "notice warn" : "muted", dataset: { testid: "importance-note" } },
      `${imp.method || "importance"} over ${imp.trials_used} complete trials` +
      (few ? ": too few for a reliable estimate (under 10); treat it as a hint." : ".")),
    h("ul", { class: "lab-bars" }, (imp.params || []).map((p) => {
      const v = finite(p.importance) ?? 0;
      return h("li", { dataset: { testid: "importance-row" } },
        h("span", { class: "bar-name", title: p.name }, p.name),
        h("span", { class: "bar-track" }, h("span", { class: "bar", style: { width: `${Math.max(0, Math.min(1, v)) * 100}%` } })),
        h("span", { class: "bar-value num" }, `${(v * 100).toFixed(1)}%`));
    })));
}

/** The comparison's statistics: one row per configuration, with its paired tests
 * against the best (by seed). */
export function comparisonTable(cmp) {
  const tests = new Map((cmp.tests || []).map((t) => [t.other, t]));
  const p = (v) => (finite(v) === null ? "—" : v < 1e-4 ? "<0.0001" : fmtNum(v, 3));
  const cols = ["configuration", "state", "n", "mean", "std", "95% CI", "best − this", "paired t p", "Wilcoxon p", "Holm p"];
  return h("div", null,
    h("p", { class: "muted" }, `${cmp.metric} (${cmp.direction}); seeds ${(cmp.seeds || []).join(", ")}. Tests pair the best configuration with each other one by seed.`),
    h("div", { class: "table-scroll" }, h("table", { class: "lab-table", dataset: { testid: "comparison-table" } },
      h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, (cmp.configurations || []).map((c) => {
        const t = tests.get(c.number);
        const best = c.number === cmp.best;
        return h("tr", { class: best ? "best" : null, dataset: { testid: "comparison-row", trial: String(c.number) } },
          h("td", null, c.label, best ? h("strong", null, " (best)") : null),
          h("td", null, c.state),
          h("td", { class: "num" }, String(c.n)),
          h("td", { class: "num" }, fmtNum(c.mean)),
          h("td", { class: "num" }, fmtNum(c.std)),
          h("td", { class: "num" }, c.ci95 ? `[${fmtNum(c.ci95[0])}, ${fmtNum(c.ci95[1])}]` : "—"),
          h("td", { class: "num" }, t ? fmtNum(t.mean_difference) : "—"),
          h("td", { class: "num" }, t ? p(t.p_value) : "—"),
          h("td", { class: "num" }, t ? p(t.wilcoxon_p) : "—"),
          h("td", { class: "num" }, t ? p(t.holm_p) : "—"));
      })))));
}
