// Compare: overlay several jobs' curves of one metric on one chart, each job labelled by
// what differs between the specs (e.g. "optimizer.name=adam, optimizer.lr=0.01").

import { api } from "../api.js";
import { h, append, clear, field, notice, fmtNum, statusBadge } from "../dom.js";
import { chartWithLogToggle } from "../chart.js";

/** {dotted path: value} for every leaf of a spec; lists are leaves (compared whole). */
export function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, path, out);
    else out[path] = v;
  }
  return out;
}

/** The leaf paths whose values are not the same in every spec (a missing leaf counts as
 * a difference), in spec order; `name` is left out: it labels, it doesn't configure. */
export function differingPaths(specs) {
  const flat = specs.map((s) => flatten(s));
  const paths = [...new Set(flat.flatMap((f) => Object.keys(f)))].filter((p) => p !== "name");
  const differ = paths.filter((p) => new Set(flat.map((f) => JSON.stringify(f[p]))).size > 1);
  // Where a section's member differs (optimizer.name adam vs sgd), the parameters only
  // one member has (betas, nesterov…) follow from that: leave them out of the labels.
  const tagDiffers = new Set(differ.filter((p) => /\.(name|kind)$/.test(p)).map((p) => p.replace(/\.[^.]+$/, "")));
  return differ.filter((p) => {
    const parent = p.includes(".") ? p.replace(/\.[^.]+$/, "") : "";
    if (!tagDiffers.has(parent) || /\.(name|kind)$/.test(p)) return true;
    return flat.every((f) => p in f);
  });
}

const showValue = (v) => (v === undefined ? "unset" : Array.isArray(v) ? JSON.stringify(v) : String(v));

/** One label per spec: "path=value, …" over the differing paths (the name when none). */
export function diffLabels(specs, names) {
  const paths = differingPaths(specs);
  return specs.map((s, i) => {
    const f = flatten(s);
    return paths.length ? paths.map((p) => `${p}=${showValue(f[p])}`).join(", ") : names[i];
  });
}

export async function render(root, params, ctx) {
  document.title = "Compare · Descent";
  const ids = [...new Set(String(params.ids || "").split(",").map((s) => s.trim()).filter(Boolean))];
  const idInput = h("input", { type: "text", value: ids.join(", "), placeholder: "job ids, comma separated",
    dataset: { testid: "compare-ids" } });
  const form = h("form", { class: "toolbar", onsubmit: (e) => {
    e.preventDefault();
    const next = idInput.value.split(/[\s,]+/).filter(Boolean).map(encodeURIComponent).join(",");
    ctx.navigate(`#/compare?ids=${next}`);
  } }, field("Jobs", idInput), h("div", { class: "field" }, h("span", null, "\u00a0"), h("button", { type: "submit" }, "Compare")));

  clear(root, h("h1", null, "Compare jobs"), form);
  if (ids.length === 0) {
    root.append(h("p", null, "Select two or more jobs in the ", h("a", { href: "#/jobs" }, "jobs table"), " and press “Compare selected”."));
    return;
  }

  // Each job and its metric history, fetched side by side; a missing one is reported.
  const loaded = await Promise.all(ids.map(async (id) => {
    const path = `/v1/jobs/${encodeURIComponent(id)}`;
    try {
      const [job, metrics] = await Promise.all([api.get(path), api.get(`${path}/metrics`)]);
      return { job, rows: metrics.epochs };
    } catch (e) {
      if (e.status === 401) throw e;
      return { id, error: e };
    }
  }));
  const jobs = loaded.filter((x) => x.job);
  for (const bad of loaded.filter((x) => x.error)) {
    root.append(notice(`Job ${bad.id}: ${bad.error.message}`, "warn", "compare-missing"));
  }
  if (!jobs.length) return;

  const labels = diffLabels(jobs.map((j) => j.job.spec), jobs.map((j) => j.job.name));
  const paths = differingPaths(jobs.map((j) => j.job.spec));
  const names = [...new Set(jobs.flatMap((j) => j.rows.flatMap((r) => Object.keys(r))))].filter((n) => n !== "epoch");
  const preferred = ["val_loss", "val_accuracy", "train_loss", "loss"].find((n) => names.includes(n)) || names[0];
  const metric = names.includes(params.metric) ? params.metric : preferred;

  const picker = h("select", { dataset: { testid: "metric-picker" } }, names.map((n) => h("option", { value: n, selected: n === metric }, n)));
  const chartBox = h("div", { class: "compare-chart" });
  append(root, [
    h("div", { class: "toolbar" }, field("Metric", picker)),
    chartBox,
    h("h2", null, "Jobs"),
    h("div", { class: "table-scroll" }, h("table", { dataset: { testid: "compare-table" } },
      h("thead", null, h("tr", null, h("th", null, "Label"), h("th", null, "Name"), h("th", null, "Status"),
        h("th", { class: "num" }, "Best"), paths.map((p) => h("th", null, p)))),
      h("tbody", null, jobs.map(({ job }, i) => {
        const flat = flatten(job.spec);
        return h("tr", { dataset: { testid: "compare-row", jobId: job.id } },
          h("td", { class: "name", dataset: { testid: "compare-label" } }, labels[i]),
          h("td", { class: "name" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.name)),
          h("td", null, statusBadge(job.status)),
          h("td", { class: "num" }, job.best_value === null ? "—" : fmtNum(job.best_value)),
          paths.map((p) => h("td", null, showValue(flat[p]))));
      })))),
    paths.length ? null : h("p", { class: "muted" }, "These specs are identical (apart from their names)."),
  ]);

  let chart = null;
  function draw(name) {
    if (chart) chart.destroy();
    chartBox.replaceChildren();
    // One x axis for all: the union of epochs; a job without an epoch there has a gap.
    const xs = [...new Set(jobs.flatMap((j) => j.rows.map((r) => r.epoch)))].sort((a, b) => a - b);
    const series = jobs.map((j) => {
      const byEpoch = new Map(j.rows.map((r) => [r.epoch, r[name]]));
      return xs.map((x) => (byEpoch.has(x) ? byEpoch.get(x) : null));
    });
    chart = chartWithLogToggle(chartBox, {
      title: name,
      series: labels.map((label, i) => ({ label: label.length > 60 ? `${label.slice(0, 59)}…` : label })),
      height: 360,
      testid: "chart",
    });
    chart.setData(xs, series);
    history.replaceState(null, "", `#/compare?ids=${ids.map(encodeURIComponent).join(",")}&metric=${encodeURIComponent(name)}`);
  }
  picker.addEventListener("change", () => draw(picker.value));
  if (metric) draw(metric);
  else chartBox.append(h("p", { class: "muted" }, "No epochs recorded yet."));
  return () => { if (chart) chart.destroy(); };
}
