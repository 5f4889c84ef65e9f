// A thin wrapper over uPlot for learning curves: live appends, a log-y toggle, vertical
// epoch marks (best / stop), resizing with its container, and values that may be null,
// NaN or ±Infinity (a diverged job) without errors: those become gaps.

import uPlot from "/static/vendor/uplot/dist/uPlot.esm.js";
import { h, fmtNum } from "./dom.js";

export const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
  "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
];

/** A value uPlot can draw: finite numbers pass, the rest become gaps (null). On a log
 * axis a value ≤ 0 cannot be drawn either. */
function clean(v, log) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  if (!Number.isFinite(n)) return null;
  return log && n <= 0 ? null : n;
}

/** Our own y range: uPlot's default log range misbehaves when a series is all gaps. */
function yRange(log) {
  return (u, dataMin, dataMax) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 1; i < u.data.length; i++) {
      if (u.series[i] && u.series[i].show === false) continue;
      for (const v of u.data[i]) {
        if (v === null || v === undefined) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (lo === Infinity) return log ? [0.1, 10] : [0, 1];
    if (log) {
      const a = Math.floor(Math.log10(lo));
      const b = Math.ceil(Math.log10(hi));
      return [10 ** a, 10 ** (b === a ? a + 1 : b)];
    }
    if (lo === hi) return [lo - (Math.abs(lo) || 1) * 0.1, hi + (Math.abs(hi) || 1) * 0.1];
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  };
}

/**
 * Create a chart in `container`.
 * opts: {title, xLabel = "epoch", series: [{label, color?, dash?}], logY = false,
 *        marks: [{x, label, color?}], height = 240, sync (cursor sync key), testid = "chart",
 *        xLog = false}
 * Returns {el, append(x, ys), setData(xs, ysPerSeries), setLogY(bool), logY(), setMarks(m),
 *          destroy(), length()}.
 */
export function lineChart(container, opts) {
  const o = { xLabel: "epoch", height: 240, logY: false, marks: [], testid: "chart", ...opts };
  // Raw values, as given: the drawn ones are derived from these (log hides ≤ 0 values).
  const xs = [];
  const ys = o.series.map(() => []);
  let marks = o.marks.slice();
  let logY = !!o.logY;
  let plot = null;

  const box = h("div", { class: "chart-box" });
  const el = h(
    "figure",
    { class: "chart", dataset: { testid: o.testid } },
    o.title ? h("figcaption", null, o.title) : null,
    box,
  );
  container.append(el);

  // How many x values the chart holds, for tests and assistive tools: data-points.
  const count = () => (el.dataset.points = String(xs.length));
  const drawn = () => [xs.map((x) => clean(x, o.xLog)), ...ys.map((s) => s.map((v) => clean(v, logY)))];

  function drawMarks(u) {
    const ctx = u.ctx;
    const { top, height } = u.bbox;
    ctx.save();
    ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
    for (const m of marks) {
      if (!Number.isFinite(m.x)) continue;
      const px = u.valToPos(m.x, "x", true);
      if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
      ctx.strokeStyle = m.color || "#555";
      ctx.fillStyle = m.color || "#555";
      ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
      ctx.lineWidth = devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + height);
      ctx.stroke();
      if (m.label) ctx.fillText(m.label, px + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
    }
    ctx.restore();
  }

  function build() {
    if (plot) plot.destroy();
    const width = Math.max(240, box.clientWidth || container.clientWidth || 600);
    const fmt = (u, v) => (v === null || v === undefined ? "—" : fmtNum(v));
    plot = new uPlot(
      {
        width,
        height: o.height,
        cursor: o.sync ? { sync: { key: o.sync } } : {},
        legend: { live: true },
        scales: {
          x: o.xLog ? { time: false, distr: 3, log: 10 } : { time: false },
          y: logY ? { distr: 3, log: 10, range: yRange(true) } : { range: yRange(false) },
        },
        axes: [
          { label: o.xLabel, values: (u, vals) => vals.map((v) => fmtNum(v, 3)) },
          { values: (u, vals) => vals.map((v) => fmtNum(v, 3)), size: 60 },
        ],
        series: [
          { label: o.xLabel, value: fmt },
          ...o.series.map((s, i) => ({
            label: s.label,
            stroke: s.color || PALETTE[i % PALETTE.length],
            width: 1.5,
            dash: s.dash,
            spanGaps: false,
            points: { show: (u) => u.data[0].length < 60 },
            value: fmt,
          })),
        ],
        hooks: { draw: [drawMarks] },
      },
      drawn(),
      box,
    );
  }

  build();
  count();
  // Follow the container's width (window resizes, the nav collapsing, a phone turning).
  let lastWidth = box.clientWidth;
  const ro = new ResizeObserver(() => {
    const w = box.clientWidth;
    if (plot && w > 0 && Math.abs(w - lastWidth) > 1) {
      lastWidth = w;
      plot.setSize({ width: Math.max(240, w), height: o.height });
    }
  });
  ro.observe(box);

  return {
    el,
    /** Add one x and its value per series (in series order); a repeat of the last x
     * replaces it (a reconnecting stream may resend an epoch). */
    append(x, values) {
      const i = xs.length - 1;
      if (i >= 0 && xs[i] === x) {
        values.forEach((v, k) => (ys[k][i] = v));
      } else {
        xs.push(x);
        values.forEach((v, k) => ys[k].push(v));
      }
      count();
      plot.setData(drawn());
    },
    setData(newXs, newYs) {
      xs.splice(0, xs.length, ...newXs);
      newYs.forEach((s, k) => ys[k].splice(0, ys[k].length, ...s));
      count();
      plot.setData(drawn());
    },
    setLogY(on) {
      logY = !!on;
      build(); // uPlot fixes a scale's distribution at creation: rebuild
    },
    logY: () => logY,
    setMarks(m) {
      marks = (m || []).slice();
      plot.redraw(false, false);
    },
    length: () => xs.length,
    destroy() {
      ro.disconnect();
      if (plot) plot.destroy();
      plot = null;
      el.remove();
    },
  };
}

/** A chart with a "log y" checkbox in its caption row. */
export function chartWithLogToggle(container, opts) {
  const wrap = h("div", { class: "chart-wrap" });
  container.append(wrap);
  const chart = lineChart(wrap, opts);
  const box = h("input", {
    type: "checkbox",
    checked: !!opts.logY,
    dataset: { testid: "log-toggle" },
    onchange: (e) => chart.setLogY(e.target.checked),
  });
  const label = h("label", { class: "log-toggle" }, box, " log y");
  const caption = chart.el.querySelector("figcaption");
  if (caption) caption.append(label);
  else chart.el.prepend(label);
  return chart;
}
