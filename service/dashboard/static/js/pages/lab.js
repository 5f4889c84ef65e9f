// #/lab and #/lab?job=<id>: the optimization lab's jobs (GET /v1/jobs?kind=lr_range_test,
// landscape), training jobs whose rate was "auto" (their `auto_lr`), and one of them:
// - a range test (or an auto-LR job's test): loss and smoothed loss against the rate
//   (log x), each suggestion marked; live from the job's events while it runs;
// - a landscape: the server's contour chart (image), the 1-D interpolation and, with PCA
//   directions, the trajectory drawn natively from the record.

import uPlot from "/static/vendor/uplot/dist/uPlot.esm.js";
import { api } from "../api.js";
import { h, clear, fmtNum, fmtTime, statusBadge, notice, ACTIVE } from "../dom.js";
import { lineChart } from "../chart.js";
import { ensureLabCss } from "./sweeps.js";

const RULE_COLORS = { steepest: "#d62728", min_div_10: "#2ca02c", valley: "#9467bd" };
const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
const jobHref = (id) => `#/lab?job=${encodeURIComponent(id)}`;

export async function render(root, params) {
  ensureLabCss();
  const cleanups = [];
  const detail = h("section", { class: "lab-section", "aria-live": "polite" });
  const lists = h("div");
  clear(root, h("h1", null, "Optimization lab"), detail, lists);
  if (params.job) await showJob(detail, params.job, cleanups);
  else clear(detail, h("p", { class: "muted" },
    "Pick a range test, a landscape or an auto-LR job below. Start one with ",
    h("code", null, "descent lr-find SPEC"), " or ", h("code", null, "descent landscape JOB"), "."));
  await showLists(lists, params.job);
  return () => cleanups.forEach((f) => f());
}

// -- the lists --------------------------------------------------------------------------

async function showLists(box, current) {
  let lab, train;
  try {
    [lab, train] = await Promise.all([
      api.get("/v1/jobs", { kind: "lr_range_test,landscape", limit: 100 }),
      api.get("/v1/jobs", { kind: "train", limit: 200 }),
    ]);
  } catch (e) {
    clear(box, notice(`Could not load lab jobs: ${e.message}`, "error"));
    return;
  }
  const auto = (train.items || []).filter((j) => j.auto_lr);
  const mark = (j) => ({ class: j.id === current ? "selected" : null, "aria-current": j.id === current ? "true" : null });
  clear(box,
    h("h2", null, "Lab jobs"),
    (lab.items || []).length ? h("div", { class: "table-scroll" }, h("table", { class: "lab-table", dataset: { testid: "lab-jobs" } },
      h("thead", null, h("tr", null, ["name", "kind", "status", "progress", "created"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, lab.items.map((j) => h("tr", { ...mark(j), dataset: { testid: "lab-job-row", id: j.id } },
        h("td", null, h("a", { href: jobHref(j.id) }, j.name || j.id)),
        h("td", null, j.kind === "lr_range_test" ? "range test" : "landscape"),
        h("td", null, statusBadge(j.status)),
        h("td", { class: "num" }, `${j.epochs_completed} / ${j.epochs} ${j.kind === "landscape" ? "rows" : "steps"}`),
        h("td", null, fmtTime(j.created_at)))))))
      : notice("No range tests or landscapes yet.", "info"),
    h("h2", null, "Auto learning rates"),
    auto.length ? h("div", { class: "table-scroll" }, h("table", { class: "lab-table", dataset: { testid: "auto-lr-table" } },
      h("thead", null, h("tr", null, ["job", "status", "fields", "rule", "suggested", "set to", "why"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, auto.map((j) => h("tr", { ...mark(j), dataset: { testid: "auto-lr-row" } },
        h("td", null, h("a", { href: jobHref(j.id) }, j.name || j.id)),
        h("td", null, statusBadge(j.status)),
        h("td", null, (j.auto_lr.fields || []).join(", ")),
        h("td", null, j.auto_lr.rule),
        h("td", { class: "num" }, fmtNum(j.auto_lr.suggested_lr)),
        h("td", { class: "num" }, fmtNum(j.auto_lr.value)),
        h("td", { class: "wrap" }, j.auto_lr.why || ""))))))
      : notice(`No training job with "auto" rates among your latest ${train.items ? train.items.length : 0}.`, "info"),
  );
}

// -- one job ----------------------------------------------------------------------------

async function showJob(box, id, cleanups) {
  let job;
  try {
    job = await api.get(`/v1/jobs/${encodeURIComponent(id)}`);
  } catch (e) {
    clear(box, notice(e.status === 404 ? "No such job." : `Could not load the job: ${e.message}`, "error"));
    return;
  }
  const head = h("div");
  const body = h("div");
  const headline = () => clear(head,
    h("h2", null, job.name || job.id, " ", statusBadge(job.status)),
    h("p", { class: "muted" }, `${job.kind} · ${job.epochs_completed} / ${job.epochs} ${job.kind === "landscape" ? "grid rows" : job.kind === "train" ? "epochs" : "steps"} · `,
      h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, "job page"),
      job.source_job_id ? [" · studies ", h("a", { href: `#/jobs/${encodeURIComponent(job.source_job_id)}` }, "its training job")] : null),
    job.status_reason ? h("p", null, job.status_reason) : null);
  headline();
  clear(box, head, body);

  if (job.kind === "train" && !job.auto_lr) {
    clear(body, notice("This training job has no lab result (its rates were not \"auto\").", "info"));
    return;
  }
  if (ACTIVE.has(job.status)) {
    // Live: a range test's rows are its steps (lr, loss, smoothed_loss); a landscape's
    // are its grid rows. The result exists once the job has ended.
    const chart = job.kind === "lr_range_test" ? rangeChart(body) : null;
    const progress = h("p", { role: "status" }, "waiting for the first row…");
    body.append(progress);
    let close = api.stream(`/v1/jobs/${encodeURIComponent(id)}/events`, {
      events: ["status", "epoch", "end"],
      onEvent: (name, d) => {
        if (!d || typeof d !== "object") return;
        if (name === "epoch") {
          const m = d.metrics || {};
          job.epochs_completed = d.epoch;
          progress.textContent = `${d.epoch} / ${d.epochs ?? job.epochs} rows`;
          if (chart && finite(m.lr) !== null) chart.append(m.lr, [m.loss, m.smoothed_loss]);
        } else if (name === "status") {
          job.status = d.status;
          headline();
        } else if (name === "end") {
          close();
          close = () => {};
          job.status = d.status;
          job.status_reason = d.status_reason;
          headline();
          if (chart) chart.destroy();
          clear(body);
          showResult(body, job, cleanups);
        }
      },
      onError: ({ closed }) => { if (closed) progress.textContent = "Live updates stopped; reload to retry."; },
    });
    cleanups.push(() => close(), () => chart && chart.destroy());
    return;
  }
  await showResult(body, job, cleanups);
}

async function showResult(box, job, cleanups) {
  let res;
  try {
    res = await api.get(`/v1/jobs/${encodeURIComponent(job.id)}/result`);
  } catch (e) {
    clear(box, notice(e.status === 409 ? e.message : `Could not load the result: ${e.message}`, "info"));
    return;
  }
  const r = res.result || {};
  if (r.kind === "lr_range_test") rangeView(box, r, r.curve, r.suggestions, cleanups);
  else if (r.kind === "auto_lr") {
    const a = r.auto_lr;
    box.append(h("p", { dataset: { testid: "auto-lr-choice" } }, h("strong", null, `${(a.fields || []).join(", ")} = ${fmtNum(a.value)}`),
      ` (rule ${a.rule}, suggested ${fmtNum(a.suggested_lr)}). ${a.why || ""}`));
    rangeView(box, a.range_test || {}, a.curve, a.suggestions || a.range_test?.suggestions, cleanups);
  } else if (r.kind === "landscape") landscapeView(box, job, r, cleanups);
  else box.append(notice(`Unknown result kind ${String(r.kind)}.`, "info"));
}

// -- range test -------------------------------------------------------------------------

function rangeChart(box, marks = []) {
  return lineChart(box, {
    title: "Loss against the learning rate", xLabel: "learning rate (log)", xLog: true, logY: true, height: 300, // log y: the loss explodes at the end
    series: [{ label: "loss", color: "#9bbbd9" }, { label: "smoothed loss", color: "#1f77b4" }],
    marks, testid: "range-test-chart",
  });
}

function rangeView(box, rec, curve, suggestions, cleanups) {
  const c = curve || { lr: [], loss: [], smoothed_loss: [] };
  const sugg = suggestions || [];
  const marks = sugg.filter((s) => finite(s.lr) !== null).map((s) => ({ x: s.lr, label: s.rule, color: RULE_COLORS[s.rule] }));
  const wrap = h("div", { class: "lab-chart" });
  box.append(wrap);
  const chart = rangeChart(wrap, marks);
  // The x axis is log: steps with a missing or non-positive rate cannot be drawn.
  const keep = (c.lr || []).map((lr, i) => (finite(lr) !== null && lr > 0 ? i : -1)).filter((i) => i >= 0);
  chart.setData(keep.map((i) => c.lr[i]), [keep.map((i) => c.loss[i]), keep.map((i) => c.smoothed_loss[i])]);
  cleanups.push(() => chart.destroy());
  box.append(
    h("h3", null, "Suggestions"),
    sugg.length ? h("ul", { class: "lab-suggestions" }, sugg.map((s) => h("li", { class: "lab-suggestion", dataset: { testid: "suggestion", rule: s.rule } },
      h("span", { class: "swatch", style: { background: RULE_COLORS[s.rule] || "#555" } }), " ",
      h("strong", null, `${s.rule}: ${fmtNum(s.lr)}`), rec.suggestion === s.rule ? " (the rule asked for)" : "",
      h("br"), h("small", { class: "muted" }, s.explanation || ""))))
      : notice("No suggestion (the test was cancelled, or its loss never fell).", "info"),
    rec.stopped ? h("p", null, `Stopped: ${rec.stopped.why} — ${rec.stopped.text}`) : null,
    rec.best ? h("p", null, `Lowest smoothed loss ${fmtNum(rec.best.smoothed_loss)} at lr ${fmtNum(rec.best.lr)} (step ${rec.best.step}).`) : null,
    rec.settings ? h("p", { class: "muted" }, `${rec.settings.mode} from ${fmtNum(rec.settings.lr_min)} to ${fmtNum(rec.settings.lr_max)}, ${rec.steps_run ?? "?"} of ${rec.settings.steps} steps, smoothing ${rec.settings.smoothing}.`) : null,
  );
}

// -- landscape --------------------------------------------------------------------------

function landscapeView(box, job, r, cleanups) {
  const id = encodeURIComponent(job.id);
  const dirs = r.directions || {};
  const ev = (r.explained_variance || []).map((v) => (finite(v) === null ? "—" : `${(v * 100).toFixed(1)}%`));
  box.append(
    h("p", null, `${r.metrics?.loss ?? "loss"} at the final weights: ${fmtNum(r.centre?.loss)}, ${r.metrics?.quality ?? "quality"} ${fmtNum(r.centre?.quality)} · `,
      `${dirs.kind === "pca" ? `PCA directions (explained variance ${ev.join(", ")})` : `random filter-normalised directions (seed ${dirs.seed ?? "?"})`} · `,
      `${r.surface?.x?.length ?? "?"}×${r.surface?.y?.length ?? "?"} grid on ${r.split} (${r.n_samples} samples)`),
    h("figure", { class: "lab-section", dataset: { testid: "landscape" } },
      h("img", { class: "lab-img", src: api.url(`/v1/jobs/${id}/plots/contour.png`), alt: `Contour of the loss around the final weights of ${job.name || job.id}`, loading: "lazy", width: 900, height: 700 }),
      h("figcaption", { class: "muted" }, "Contour drawn by the server · ",
        h("a", { href: api.url(`/v1/jobs/${id}/plots/surface.png`), target: "_blank", rel: "noopener" }, "3-D surface"), " · ",
        h("a", { href: api.url(`/v1/jobs/${id}/plots/contour.svg`), target: "_blank", rel: "noopener" }, "contour as SVG"))),
  );
  const line = r.interpolation;
  if (line && Array.isArray(line.alpha)) {
    const wrap = h("div", { class: "lab-chart" });
    box.append(h("h3", null, "From the initial (α = 0) to the final weights (α = 1)"), wrap);
    const chart = lineChart(wrap, {
      title: "Loss along the line", xLabel: "α", testid: "interpolation-chart", height: 240,
      series: [{ label: r.metrics?.loss || "loss" }], marks: [{ x: 0, label: "initial" }, { x: 1, label: "final" }],
    });
    chart.setData(line.alpha, [line.loss]);
    cleanups.push(() => chart.destroy());
  }
  const t = r.trajectory;
  if (t && Array.isArray(t.x) && t.x.length) box.append(h("h3", null, "The optimizer's path in the PCA plane"), trajectoryChart(t, r.surface, cleanups));
}

/** The trajectory's points (x, y) in order, joined: a uPlot chart in mode 2 (x is not
 * sorted along a path), scales fixed to the grid so the path sits where the contour's does. */
function trajectoryChart(t, surface, cleanups) {
  const idx = t.x.map((_, i) => i).filter((i) => finite(t.x[i]) !== null && finite(t.y[i]) !== null);
  const xs = idx.map((i) => t.x[i]);
  const ys = idx.map((i) => t.y[i]);
  const span = (arr, extra) => {
    const v = [...arr, ...(extra || [])].filter((a) => finite(a) !== null);
    const lo = Math.min(...v), hi = Math.max(...v);
    return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
  };
  const [x0, x1] = span(xs, surface && surface.x);
  const [y0, y1] = span(ys, surface && surface.y);
  const wrap = h("div", { class: "lab-chart", dataset: { testid: "trajectory-chart" } });
  const size = () => Math.min(560, Math.max(260, wrap.clientWidth || 480));
  let plot = null;
  requestAnimationFrame(() => { // after wrap is in the page, to know its width
    plot = new uPlot({
      mode: 2, width: size(), height: Math.round(size() * 0.8), legend: { show: false }, cursor: { show: false },
      scales: { x: { time: false, auto: false, range: [x0, x1] }, y: { auto: false, range: [y0, y1] } },
      axes: [{ label: "direction 1", values: (u, v) => v.map((a) => fmtNum(a, 3)) }, { label: "direction 2", size: 60, values: (u, v) => v.map((a) => fmtNum(a, 3)) }],
      series: [{}, { label: "trajectory", stroke: "#d62728", width: 2, paths: uPlot.paths.linear(), points: { show: true, size: 6, fill: "#d62728" } }],
      hooks: { draw: [(u) => { // label each epoch beside its point
        const ctx = u.ctx;
        ctx.save();
        ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
        ctx.fillStyle = "#333";
        idx.forEach((i, k) => ctx.fillText(String(t.epochs[i]), u.valToPos(xs[k], "x", true) + 5 * devicePixelRatio, u.valToPos(ys[k], "y", true) - 4 * devicePixelRatio));
        ctx.restore();
      }] },
    }, [null, [xs, ys]], wrap);
  });
  cleanups.push(() => plot && plot.destroy());
  return h("div", null, wrap, h("p", { class: "muted" },
    `Epochs ${t.epochs[0]}–${t.epochs[t.epochs.length - 1]}, labelled; loss ${t.loss.map((v) => fmtNum(v, 3)).join(" → ")}.`));
}
