// #/sweeps/<id>: one sweep or comparison, live. The first read is GET /v1/sweeps/{id} and
// /trials; then GET /v1/sweeps/{id}/events keeps everything current: `trial` events
// (one per job: state, objective so far), `epoch` events (every epoch of every job, with
// the objective's value: the intermediate curves and the comparison bands are built from
// them), `sweep` (status, counts, best) and `end`. Importance and the comparison's
// statistics are re-read (throttled) when the count of complete trials changes.

import uPlot from "/static/vendor/uplot/dist/uPlot.esm.js";
import { api } from "../api.js";
import { h, clear, fmtNum, fmtTime, statusBadge, notice } from "../dom.js";
// The pieces drawn from plain data live in sweeps.js (the list page) to keep this file short.
import { ensureLabCss, parallelCoords, importanceView, comparisonTable, bandsOf, COLORS } from "./sweeps.js";

const RENDER_MS = 300; // coalesce bursts of events into one redraw
const REFETCH_MS = 8000; // importance / comparison at most this often while live
const ORDER = { complete: 0, pruned: 1, failed: 2, cancelled: 3, running: 4, queued: 5 };

// Epochs are whole numbers: no 1.5 ticks.
const EPOCH_AXIS = { label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] };
const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
const fmtParam = (v) => (typeof v === "number" ? fmtNum(v) : v === null || v === undefined ? "—" : String(v));

export async function render(root, params) {
  ensureLabCss();
  const id = params.id;
  let sweep;
  try {
    sweep = await api.get(`/v1/sweeps/${encodeURIComponent(id)}`);
  } catch (e) {
    clear(root, h("p", null, h("a", { href: "#/sweeps" }, "← sweeps")),
      notice(e.status === 404 ? "No such sweep." : `Could not load the sweep: ${e.message}`, "error"));
    return () => {};
  }
  const isComparison = sweep.kind === "comparison";
  const hasStats = Boolean(sweep.links && sweep.links.comparison);
  const dir = sweep.objective.direction;
  const metric = sweep.objective.metric;

  // -- state ------------------------------------------------------------------------
  const trials = new Map(); // number → {number, label, params, state, value, jobs: Map}
  const curves = new Map(); // job id → {trial, repeat, points: Map(epoch → objective)}
  let gone = false;
  let closeStream = null;
  let renderTimer = null;
  let lastFetch = 0;
  let lastComplete = -1;
  let fetchTimer = null;

  function trialOf(n) {
    if (!trials.has(n)) trials.set(n, { number: n, label: null, params: {}, state: "queued", value: null, jobs: new Map() });
    return trials.get(n);
  }
  function fromRead(t) {
    const tr = trialOf(t.number);
    Object.assign(tr, { label: t.label, params: t.params || {}, state: t.state, value: finite(t.value) });
    for (const j of t.jobs || []) tr.jobs.set(j.id, { ...tr.jobs.get(j.id), ...j });
  }
  // A trial's value: the API's when it gave one, else from its jobs (mean over seeds).
  function valueOf(t) {
    const vals = [...t.jobs.values()].map((j) => finite(j.objective)).filter((v) => v !== null);
    if (t.state === "failed" || t.state === "cancelled") return t.value;
    if (!vals.length) return t.value;
    return vals.reduce((a, b) => a + b, 0) / vals.length;
  }
  function ranked() {
    const sign = dir === "max" ? -1 : 1;
    return [...trials.values()].map((t) => ({ ...t, v: valueOf(t) })).sort((a, b) => {
      const o = (ORDER[a.state] ?? 9) - (ORDER[b.state] ?? 9);
      if (o) return o;
      if (a.v !== null && b.v !== null && a.v !== b.v) return sign * (a.v - b.v);
      if ((a.v === null) !== (b.v === null)) return a.v === null ? 1 : -1;
      return a.number - b.number;
    });
  }
  // Parameter columns: the space's paths first (as written), then any others trials set.
  function paramKeys() {
    const keys = Object.keys((sweep.spec && sweep.spec.space) || {}).filter((k) => k !== "optimizer");
    for (const t of trials.values()) for (const k of Object.keys(t.params)) if (!keys.includes(k)) keys.push(k);
    return keys.filter((k) => [...trials.values()].some((t) => k in t.params));
  }

  // -- layout -----------------------------------------------------------------------
  const head = h("div", { class: "sweep-head" });
  const board = h("section", { class: "lab-section" });
  const curvesBox = h("div", { class: "lab-chart", dataset: { testid: "intermediate-chart" } });
  const bandsBox = h("div", { class: "lab-chart", dataset: { testid: "comparison-bands" } });
  const parBox = h("div", { class: "table-scroll", dataset: { testid: "parallel-coords" } });
  const impBox = h("div", { dataset: { testid: "importance" } });
  const cmpBox = h("div");
  const live = h("p", { class: "muted", role: "status", dataset: { testid: "live-state" } }, "connecting…");
  clear(
    root,
    h("p", null, h("a", { href: "#/sweeps" }, "← sweeps")),
    head,
    live,
    h("h2", null, "Leaderboard"),
    board,
    hasStats ? [h("h2", null, `${metric} over seeds: mean and 95% CI`), bandsBox, h("h2", null, "Statistics over seeds"), cmpBox] : null,
    !isComparison ? [
      h("h2", null, `Intermediate values (${metric} per epoch)`),
      h("p", { class: "muted" }, "Dashed grey lines ending in ✕ are trials the pruner stopped."),
      curvesBox,
      h("h2", null, "Parallel coordinates"),
      parBox,
      h("h2", null, "Parameter importance"),
      impBox,
    ] : null,
    h("details", { class: "lab-section" }, h("summary", null, "Server-drawn charts"),
      ...["history", "intermediate", "parallel", "importance", "comparison"]
        .filter((k) => sweep.links && sweep.links[`plot_${k}`])
        .map((k) => h("p", null, h("a", { href: api.url(`/v1/sweeps/${encodeURIComponent(id)}/plots/${k}.png`), target: "_blank", rel: "noopener" }, `${k} (PNG)`),
          " · ", h("a", { href: api.url(`/v1/sweeps/${encodeURIComponent(id)}/plots/${k}.svg`), target: "_blank", rel: "noopener" }, "SVG")))),
  );

  // -- the header: status, counts, best, cancel -------------------------------------
  let confirming = false;
  function renderHead() {
    const c = sweep.counts || {};
    const best = sweep.best;
    const cancel = sweep.status === "running" && !sweep.cancel_requested
      ? (confirming
        ? h("span", { class: "lab-confirm" }, "Cancel this sweep? ",
          h("button", { type: "button", class: "danger", dataset: { testid: "cancel-confirm" }, onclick: doCancel }, "Yes, cancel"),
          " ", h("button", { type: "button", onclick: () => { confirming = false; renderHead(); } }, "No"))
        : h("button", { type: "button", dataset: { testid: "cancel-sweep" }, onclick: () => { confirming = true; renderHead(); } }, "Cancel sweep"))
      : null;
    const ab = sweep.auto_bounds;
    clear(
      head,
      h("h1", null, sweep.name || sweep.id, " ", h("small", { class: "muted" }, isComparison ? "comparison" : "sweep")),
      h("p", null, statusBadge(sweep.status, "sweep-status"), " ",
        sweep.status_reason ? h("span", { dataset: { testid: "sweep-reason" } }, sweep.status_reason) : null, " ", cancel),
      h("p", { dataset: { testid: "sweep-counts" } },
        `${sweep.trials_created} of ${sweep.max_trials} trials created · `,
        ["complete", "running", "queued", "pruned", "failed", "cancelled"].map((k) => `${k} ${c[k] || 0}`).join(" · "),
        ` · ${epochsSpent()} epochs · objective ${metric} (${dir}, ${sweep.objective.measure})`,
        sweep.repeats > 1 ? ` · ${sweep.repeats} seeds each` : ""),
      best ? h("p", { dataset: { testid: "sweep-best" } }, "Best: ",
        h("strong", null, fmtNum(best.value)), ` — ${best.label || `trial #${best.number}`} `,
        h("small", { class: "muted" }, Object.entries(best.params || {}).map(([k, v]) => `${k}=${fmtParam(v)}`).join(", "))) : null,
      ab ? h("p", null, "LR range test: ", h("a", { href: `#/lab?job=${encodeURIComponent(ab.job_id)}` }, "its curve"),
        ab.bounds ? ` · ${Object.entries(ab.bounds).map(([k, [lo, hi]]) => `${k} ∈ [${fmtNum(lo)}, ${fmtNum(hi)}]`).join(", ")}` : " · running…",
        ab.why ? h("small", { class: "muted" }, ` ${ab.why}`) : null) : null,
      h("p", { class: "muted" }, `created ${fmtTime(sweep.created_at)}`, sweep.finished_at ? ` · finished ${fmtTime(sweep.finished_at)}` : ""),
    );
  }
  // Sweep events carry no epoch count: take the larger of the last read and the jobs' own.
  function epochsSpent() {
    let n = 0;
    for (const t of trials.values()) for (const j of t.jobs.values()) n += j.epochs_completed || 0;
    return Math.max(n, sweep.epochs_spent || 0);
  }
  async function doCancel() {
    confirming = false;
    try {
      sweep = await api.post(`/v1/sweeps/${encodeURIComponent(id)}/cancel`);
    } catch (e) {
      head.append(notice(`Could not cancel: ${e.message}`, "error"));
      return;
    }
    renderHead();
  }

  // -- the leaderboard --------------------------------------------------------------
  function renderBoard() {
    const rows = ranked();
    if (!rows.length) {
      clear(board, notice(sweep.auto_bounds && !sweep.auto_bounds.bounds ? "Waiting for the LR range test to set the ranges." : "No trials yet.", "info"));
      return;
    }
    const keys = paramKeys();
    const bestNo = sweep.best ? sweep.best.number : null;
    clear(board, h("div", { class: "table-scroll" }, h("table", { class: "lab-table", dataset: { testid: "leaderboard" } },
      h("thead", null, h("tr", null, ["rank", isComparison ? "configuration" : "trial", "state", metric, "epochs", ...keys, "jobs"]
        .map((k) => h("th", { scope: "col", title: k }, k)))),
      h("tbody", null, rows.map((t, i) => h("tr", {
        class: `state-${t.state}${t.number === bestNo ? " best" : ""}`,
        dataset: { testid: "leaderboard-row", trial: String(t.number), state: t.state },
      },
      h("td", { class: "num" }, t.state === "complete" ? String(i + 1) : "—"),
      h("td", null, t.label ? `${t.label} (#${t.number})` : `#${t.number}`),
      h("td", null, h("span", { class: `badge status-${t.state}`, dataset: { testid: "trial-state" } }, t.state)),
      h("td", { class: "num" }, fmtNum(t.v), t.state === "running" ? h("small", { class: "muted" }, " so far") : t.state === "pruned" ? h("small", { class: "muted" }, " at stop") : null),
      h("td", { class: "num" }, String([...t.jobs.values()].reduce((a, j) => a + (j.epochs_completed || 0), 0))),
      keys.map((k) => h("td", { class: typeof t.params[k] === "number" ? "num" : null }, k in t.params ? fmtParam(t.params[k]) : "")),
      h("td", null, [...t.jobs.values()].sort((a, b) => a.repeat - b.repeat).map((j, k) =>
        h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, title: j.status_reason || j.status }, k ? ` s${j.repeat}` : `s${j.repeat}`)))))))));
  }

  // -- intermediate curves (uPlot, one series per job) ------------------------------
  let curvePlot = null;
  let curveSig = "";
  function curveData() {
    const jobs = [...curves.entries()].sort((a, b) => a[1].trial - b[1].trial || a[1].repeat - b[1].repeat);
    let maxEpoch = 0;
    for (const [, c] of jobs) for (const e of c.points.keys()) maxEpoch = Math.max(maxEpoch, e);
    const xs = Array.from({ length: maxEpoch }, (_, i) => i + 1);
    return { jobs, data: [xs, ...jobs.map(([, c]) => xs.map((e) => finite(c.points.get(e) ?? null)))] };
  }
  function renderCurves() {
    if (isComparison) return;
    const { jobs, data } = curveData();
    if (!jobs.length || !data[0].length) {
      if (!curvePlot) clear(curvesBox, notice("No epochs recorded yet.", "info"));
      return;
    }
    const stateOf = (c) => (trials.get(c.trial) || {}).state || "running";
    const sig = jobs.map(([jid, c]) => `${jid}:${stateOf(c)}`).join("|");
    if (curvePlot && sig === curveSig) {
      curvePlot.setData(data);
      return;
    }
    curveSig = sig;
    if (curvePlot) curvePlot.destroy();
    clear(curvesBox);
    const many = jobs.length > 16;
    const series = jobs.map(([, c]) => {
      const st = stateOf(c);
      const stopped = st === "pruned" || st === "failed" || st === "cancelled";
      const name = `#${c.trial}${sweep.repeats > 1 ? ` s${c.repeat}` : ""}${stopped ? ` (${st})` : ""}`;
      return { label: name, stroke: stopped ? "#9a9a9a" : COLORS[c.trial % COLORS.length], width: stopped ? 1 : 1.6,
        dash: st === "pruned" ? [6, 4] : st === "failed" || st === "cancelled" ? [2, 3] : undefined,
        spanGaps: false, points: { show: data[0].length < 30 }, value: (u, v) => fmtNum(v), _state: st };
    });
    curvePlot = new uPlot({
      width: Math.max(280, curvesBox.clientWidth || 600), height: 280,
      legend: { show: !many, live: true },
      scales: { x: { time: false } },
      axes: [EPOCH_AXIS, { label: metric, size: 60, values: (u, vs) => vs.map((v) => fmtNum(v, 3)) }],
      series: [{ label: "epoch" }, ...series],
      hooks: { draw: [markPruned] },
    }, data, curvesBox);
    if (many) curvesBox.append(h("p", { class: "muted" }, `${jobs.length} curves: legend hidden; the leaderboard names them.`));
  }
  // A ✕ where each pruned trial stopped (its last finite point).
  function markPruned(u) {
    const ctx = u.ctx;
    ctx.save();
    ctx.font = `${Math.round(12 * devicePixelRatio)}px system-ui, sans-serif`;
    ctx.fillStyle = "#666";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    u.series.forEach((s, i) => {
      if (!i || s._state !== "pruned" || s.show === false) return;
      const ys = u.data[i];
      for (let k = ys.length - 1; k >= 0; k--) {
        if (ys[k] === null || ys[k] === undefined) continue;
        ctx.fillText("✕", u.valToPos(u.data[0][k], "x", true), u.valToPos(ys[k], "y", true));
        break;
      }
    });
    ctx.restore();
  }

  // -- comparison bands (uPlot with fills between lower and upper series) -----------
  let bandPlot = null;
  let bandSig = "";
  function renderBands() {
    if (!hasStats) return;
    const { xs, configs } = bandsOf(trials, curves);
    if (!configs.length) {
      if (!bandPlot) clear(bandsBox, notice("No epochs recorded yet.", "info"));
      return;
    }
    const data = [xs];
    const series = [{ label: "epoch" }];
    const bands = [];
    configs.forEach((c, k) => {
      const color = COLORS[k % COLORS.length];
      const base = data.length;
      data.push(c.mean, c.low, c.high);
      series.push({ label: c.label, stroke: color, width: 2, spanGaps: false, points: { show: xs.length < 30 } },
        { label: `${c.label} low`, stroke: color, width: 0, points: { show: false } },
        { label: `${c.label} high`, stroke: color, width: 0, points: { show: false } });
      bands.push({ series: [base + 2, base + 1], fill: `${color}33` });
    });
    const sig = configs.map((c) => c.label).join("|");
    if (bandPlot && sig === bandSig) {
      bandPlot.setData(data);
    } else {
      bandSig = sig;
      if (bandPlot) bandPlot.destroy();
      clear(bandsBox);
      bandPlot = new uPlot({
        width: Math.max(280, bandsBox.clientWidth || 600), height: 280, legend: { show: false }, bands,
        scales: { x: { time: false } },
        axes: [EPOCH_AXIS, { label: metric, size: 60, values: (u, vs) => vs.map((v) => fmtNum(v, 3)) }],
        series,
      }, data, bandsBox);
      bandsBox.append(h("ul", { class: "lab-legend", dataset: { testid: "bands-legend" } }, configs.map((c, k) =>
        h("li", null, h("span", { class: "swatch", style: { background: COLORS[k % COLORS.length] } }), `${c.label} (n=${c.seeds})`))));
    }
  }

  // -- importance and statistics: re-read on new complete trials --------------------
  async function refetch(force) {
    const complete = (sweep.counts && sweep.counts.complete) || 0;
    if (!force && complete === lastComplete) return;
    const wait = lastFetch + REFETCH_MS - Date.now();
    if (!force && wait > 0) {
      clearTimeout(fetchTimer);
      fetchTimer = setTimeout(() => refetch(false), wait);
      return;
    }
    lastComplete = complete;
    lastFetch = Date.now();
    const base = `/v1/sweeps/${encodeURIComponent(id)}`;
    if (!isComparison && sweep.links && sweep.links.importance && complete < 2) {
      // The API answers 409 below 2 complete trials: say so without asking.
      clear(impBox, notice(`Importance needs at least 2 complete trials (${complete} so far).`, "info", "importance-note"));
    } else if (!isComparison && sweep.links && sweep.links.importance) {
      api.get(`${base}/importance`).then((imp) => !gone && clear(impBox, importanceView(imp)),
        (e) => !gone && clear(impBox, notice(e.status === 409 ? e.message : `Importance unavailable: ${e.message}`, "info", "importance-note")));
    }
    if (hasStats) {
      api.get(`${base}/comparison`).then((cmp) => !gone && clear(cmpBox, comparisonTable(cmp)),
        (e) => !gone && clear(cmpBox, notice(e.status === 409 ? e.message : `Statistics unavailable: ${e.message}`, "info")));
    }
  }

  function renderAll() {
    renderTimer = null;
    if (gone) return;
    renderHead();
    renderBoard();
    renderCurves();
    renderBands();
    if (!isComparison) clear(parBox, parallelCoords(ranked(), paramKeys(), sweep, metric));
  }
  function schedule() {
    if (!renderTimer) renderTimer = setTimeout(renderAll, RENDER_MS);
  }

  // -- first read, then the stream --------------------------------------------------
  try {
    const page = await api.get(`/v1/sweeps/${encodeURIComponent(id)}/trials`, { limit: 200 });
    (page.items || []).forEach(fromRead);
  } catch (e) {
    board.append(notice(`Could not load trials: ${e.message}`, "error"));
  }
  renderAll();
  refetch(true);

  function onEvent(name, d) {
    if (gone || !d || typeof d !== "object") return;
    if (name === "sweep" || name === "end") {
      Object.assign(sweep, { status: d.status, status_reason: d.status_reason, trials_created: d.trials_created,
        counts: d.counts, best: d.best });
      if (name === "end") finish();
      else refetch(false);
    } else if (name === "trial") {
      const t = trialOf(d.trial);
      Object.assign(t, { label: d.label, params: d.params || t.params, state: d.trial_state });
      t.jobs.set(d.job_id, { ...t.jobs.get(d.job_id), id: d.job_id, repeat: d.repeat, status: d.status,
        status_reason: d.status_reason, objective: d.objective, epochs_completed: d.epochs_completed, epochs: d.epochs });
    } else if (name === "epoch") {
      if (!curves.has(d.job_id)) curves.set(d.job_id, { trial: d.trial, repeat: d.repeat, points: new Map() });
      curves.get(d.job_id).points.set(d.epoch, d.objective);
      // `trial` events come only on status changes: keep the running job's epochs and
      // objective so far (best or last epoch, as the sweep scores) moving from its epochs.
      const t = trials.get(d.trial);
      const j = t && t.jobs.get(d.job_id);
      if (j && (t.state === "running" || t.state === "queued")) {
        j.epochs_completed = Math.max(j.epochs_completed || 0, d.epoch);
        const v = finite(d.objective);
        if (v !== null) {
          const better = (a, b) => (dir === "max" ? a > b : a < b);
          j.objective = sweep.objective.measure === "last" || finite(j.objective) === null || better(v, j.objective) ? v : j.objective;
        }
      }
    }
    schedule();
  }
  async function finish() {
    if (closeStream) closeStream();
    closeStream = null;
    live.textContent = "Ended: final results.";
    try { // the API's own values (complete trials' mean over seeds) and finished_at
      sweep = await api.get(`/v1/sweeps/${encodeURIComponent(id)}`);
      const page = await api.get(`/v1/sweeps/${encodeURIComponent(id)}/trials`, { limit: 200 });
      (page.items || []).forEach(fromRead);
    } catch { /* keep what the stream said */ }
    if (gone) return;
    schedule();
    refetch(true);
  }
  closeStream = api.stream(`/v1/sweeps/${encodeURIComponent(id)}/events`, {
    events: ["sweep", "trial", "epoch", "end"],
    onEvent,
    onOpen: () => { if (!gone && closeStream) live.textContent = "Live: following the sweep's events."; },
    onError: ({ closed }) => {
      if (gone || !closeStream) return;
      live.textContent = closed ? "Live updates stopped (the stream was refused). Reload to retry." : "Reconnecting…";
    },
  });

  const ro = new ResizeObserver(() => {
    if (curvePlot && curvesBox.clientWidth) curvePlot.setSize({ width: Math.max(280, curvesBox.clientWidth), height: 280 });
    if (bandPlot && bandsBox.clientWidth) bandPlot.setSize({ width: Math.max(280, bandsBox.clientWidth), height: 280 });
  });
  ro.observe(root);

  return () => {
    gone = true;
    if (closeStream) closeStream();
    clearTimeout(renderTimer);
    clearTimeout(fetchTimer);
    ro.disconnect();
    if (curvePlot) curvePlot.destroy();
    if (bandPlot) bandPlot.destroy();
  };
}
