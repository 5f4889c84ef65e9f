// The learning-curve panel of a job: groups its metrics into charts (losses, quality,
// learning rate, momentum/β1, gradient norm, the rest) and appends epochs as they come.

import { h } from "./dom.js";
import { chartWithLogToggle } from "./chart.js";

// Not drawn: the x axis itself and timing figures (they are in the metrics table).
const SKIP = new Set(["epoch", "step", "row", "epoch_seconds", "samples_per_second"]);

// [title, metric names (drawn when present), log y by default]
const GROUPS = [
  ["Loss", ["train_loss", "val_loss", "loss", "smoothed_loss"], false],
  ["Accuracy", ["train_accuracy", "val_accuracy"], false],
  ["R²", ["val_r2"], false],
  ["Error", ["train_mse", "val_mse", "val_mae"], false],
  ["Learning rate", ["lr"], false],
  ["Momentum / β1", ["momentum", "beta1"], false],
  ["Gradient norm", ["grad_norm"], false],
  ["Weight norm", ["weight_norm"], false],
];

// Fixed colours per name, so train/val look the same on every chart and page.
const COLORS = {
  train_loss: "#1f77b4", val_loss: "#d62728", loss: "#1f77b4", smoothed_loss: "#d62728",
  train_accuracy: "#1f77b4", val_accuracy: "#2ca02c", val_r2: "#2ca02c",
  train_mse: "#1f77b4", val_mse: "#d62728", val_mae: "#ff7f0e",
  lr: "#9467bd", momentum: "#8c564b", beta1: "#e377c2", grad_norm: "#ff7f0e", weight_norm: "#17becf",
};

/** Split metric names into chart groups: [{title, names, logY}], unknown names alone. */
export function groupMetrics(names) {
  const present = new Set(names.filter((n) => !SKIP.has(n)));
  const groups = [];
  for (const [title, members, logY] of GROUPS) {
    const here = members.filter((n) => present.has(n));
    here.forEach((n) => present.delete(n));
    if (here.length) groups.push({ title, names: here, logY });
  }
  for (const n of present) groups.push({ title: n, names: [n], logY: false });
  return groups;
}

/**
 * A set of charts in `container` fed by epoch records ({epoch, …metrics}).
 * xKey: the x metric ("epoch"; a range test's rows are steps with `lr` — still by epoch id).
 * Returns {load(rows), append(epoch, metrics), setMarks(marks), destroy()}.
 */
export function curvesPanel(container, { xLabel = "epoch", sync = "job" } = {}) {
  const grid = h("div", { class: "charts", dataset: { testid: "charts" } });
  container.append(grid);
  let charts = []; // [{group, chart}]
  let marks = [];
  let known = new Set();

  function build(names) {
    for (const { chart } of charts) chart.destroy();
    grid.replaceChildren();
    known = new Set(names);
    charts = groupMetrics(names).map((group) => ({
      group,
      chart: chartWithLogToggle(grid, {
        title: group.title,
        xLabel,
        series: group.names.map((n) => ({ label: n, color: COLORS[n] })),
        logY: group.logY,
        marks,
        sync,
        testid: "chart",
        height: 220,
      }),
    }));
  }

  function load(rows) {
    const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    build(names);
    const xs = rows.map((r) => r.epoch);
    for (const { group, chart } of charts) {
      chart.setData(xs, group.names.map((n) => rows.map((r) => r[n])));
    }
  }

  return {
    load,
    /** One more epoch; a metric seen for the first time rebuilds the charts from `all`. */
    append(epoch, metrics, all) {
      const fresh = Object.keys(metrics).some((n) => !known.has(n) && !SKIP.has(n));
      if (fresh || !charts.length) {
        load(all);
        return;
      }
      for (const { group, chart } of charts) chart.append(epoch, group.names.map((n) => metrics[n]));
    },
    setMarks(m) {
      marks = m;
      for (const { chart } of charts) chart.setMarks(m);
    },
    destroy() {
      for (const { chart } of charts) chart.destroy();
      charts = [];
      grid.remove();
    },
  };
}
