// One job: header with live status, its learning curves (history from GET …/metrics, then
// new epochs from GET …/events), best/stop marks, the result of lab jobs, attempts, the
// metrics table with CSV download, the model link and the full spec.

import { api } from "../api.js";
import { h, clear, notice, fmtNum, fmtTime, fmtDuration, statusBadge, ACTIVE } from "../dom.js";
import { curvesPanel } from "../curves.js";
import { labelChips, labelsPanel } from "../labels.js";
import { modelPanel } from "../model.js";

const LAB_KINDS = new Set(["lr_range_test", "landscape"]);

export async function render(root, params, ctx) {
  const id = params.id;
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  let job = await api.get(path);
  document.title = `${job.name} · Descent`;

  const rows = []; // every epoch record seen, in order: the table and chart rebuilds use it
  let stop = null;
  let disposed = false;

  const header = h("div", { class: "page-header" });
  const msg = h("div", { "aria-live": "polite" });
  const facts = h("dl", { class: "facts", dataset: { testid: "job-facts" } });
  const chartsBox = h("section", { "aria-label": "Learning curves" });
  const resultBox = h("section", { dataset: { testid: "job-result" } });
  const modelBox = h("div");
  const chipsBox = h("div");
  const attemptsBox = h("section", { dataset: { testid: "attempts" } });
  const tableBox = h("div", { class: "table-scroll", style: { maxHeight: "26rem" } });
  const specPre = h("pre", { class: "spec", dataset: { testid: "job-spec" } }, JSON.stringify(job.spec, null, 2));

  clear(root,
    h("p", null, h("a", { href: "#/jobs" }, "← Jobs")),
    header, chipsBox, msg,
    h("div", { class: "card" }, facts),
    modelBox,
    h("h2", null, "Learning curves"), chartsBox,
    resultBox,
    h("h2", null, "Metrics"),
    h("div", { class: "actions" },
      h("a", { class: "button", href: api.url(`${path}/metrics`, { format: "csv" }), download: `${job.name}-metrics.csv`,
        dataset: { testid: "metrics-csv" } }, "Download CSV")),
    h("details", { open: false }, h("summary", null, "Per-epoch table"), tableBox),
    attemptsBox,
    labelsPanel(job, path, (updated) => { job = { ...job, ...updated }; drawHeader(); }),
    h("h2", null, "Spec"),
    h("details", { open: true }, h("summary", null, "Full spec with defaults (JSON)"), specPre),
  );

  const curves = curvesPanel(chartsBox, { xLabel: job.kind === "lr_range_test" ? "step" : "epoch" });

  // -- header and facts -------------------------------------------------------------------
  function drawHeader() {
    clear(header,
      h("h1", { dataset: { testid: "job-name" } }, job.name),
      statusBadge(job.status),
      h("span", { class: "muted" }, job.kind === "train" ? "epoch " : "row ",
        h("span", { dataset: { testid: "epoch-count" } }, `${job.epochs_completed}/${job.epochs}`)),
      ACTIVE.has(job.status)
        ? h("button", { type: "button", class: "danger", dataset: { testid: "cancel" }, disabled: job.cancel_requested,
            onclick: cancel }, job.cancel_requested ? "Cancelling…" : "Cancel")
        : null,
      h("a", { class: "button", href: `#/new?from=${encodeURIComponent(job.id)}`, dataset: { testid: "clone" } }, "Clone and edit"),
      LAB_KINDS.has(job.kind) || job.auto_lr
        ? h("a", { class: "button", href: `#/lab?job=${encodeURIComponent(job.id)}`, dataset: { testid: "lab-link" } }, "Open in Lab")
        : null,
    );
    const sp = job.spec || {};
    const entries = [
      ["Status reason", job.status_reason],
      ["Kind / task", `${job.kind} · ${job.task}`],
      ["Dataset", sp.dataset?.name],
      ["Model", sp.model ? `${sp.model.kind}${sp.model.hidden ? ` ${JSON.stringify(sp.model.hidden)}` : ""}` : null],
      ["Optimizer", sp.optimizer ? `${sp.optimizer.name}, lr ${sp.optimizer.lr}` : null],
      ["Schedule", sp.schedule?.name],
      ["Parameters", job.n_parameters?.toLocaleString()],
      ["Best", job.best_value === null || job.best_value === undefined ? null
        : `${fmtNum(job.best_value)} at epoch ${job.best_epoch}`],
      ["Stopped early at", job.stop_epoch],
      ["Weights kept", job.saved_epoch ? `epoch ${job.saved_epoch}` : null],
      ["Auto LR", job.auto_lr ? `${job.auto_lr.fields.join(", ")} = ${fmtNum(job.auto_lr.value)} (${job.auto_lr.rule}): ${job.auto_lr.why}` : null],
      ["Attempt", job.attempt > 1 ? `${job.attempt} (resumed after a lost worker)` : job.attempt],
      ["Device", job.device],
      ["Created", fmtTime(job.created_at)],
      ["Started", fmtTime(job.started_at)],
      ["Finished", job.finished_at ? `${fmtTime(job.finished_at)} (${fmtDuration(job.started_at, job.finished_at)})` : null],
      ["Note", job.note],
      ["Id", job.id],
    ];
    clear(facts, entries.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => [h("dt", null, k), h("dd", { dataset: k === "Status reason" ? { testid: "job-reason" } : undefined }, String(v))]));
    clear(chipsBox, labelChips(job));
    // Drawn again only when what it shows changes (it holds the predict form's input).
    const modelKey = `${job.status}/${job.has_model}/${job.has_bundle}/${job.saved_epoch}`;
    if (modelBox.dataset.key !== modelKey) {
      modelBox.dataset.key = modelKey;
      clear(modelBox, modelPanel(job));
    }
    curves.setMarks(marks());
  }

  function marks() {
    const m = [];
    if (job.best_epoch) m.push({ x: job.best_epoch, label: "best", color: "#1a7f37" });
    if (job.stop_epoch) m.push({ x: job.stop_epoch, label: "stop", color: "#b42318" });
    return m;
  }

  async function cancel() {
    try {
      job = await api.post(`${path}/cancel`);
      drawHeader();
    } catch (e) {
      clear(msg, notice(`Could not cancel: ${e.message}`, "error", "cancel-error"));
    }
  }

  // -- metrics table --------------------------------------------------------------------
  let tbody = null;
  let columns = [];
  function drawTable(names) {
    columns = names;
    tbody = h("tbody");
    clear(tableBox, h("table", { dataset: { testid: "metrics-table" } },
      h("thead", null, h("tr", null, names.map((n) => h("th", { class: "num" }, n)))), tbody));
    rows.forEach(addTableRow);
  }
  function addTableRow(r) {
    if (!tbody) return;
    tbody.append(h("tr", null, columns.map((n) => h("td", { class: "num" }, fmtNum(r[n])))));
  }

  // -- attempts ----------------------------------------------------------------------------
  async function loadAttempts() {
    try {
      const attempts = await api.get(`${path}/attempts`);
      if (disposed) return;
      clear(attemptsBox, h("h2", null, "Attempts"),
        attempts.length === 0 ? h("p", { class: "muted" }, "Not started yet.") :
        h("div", { class: "table-scroll" }, h("table", { dataset: { testid: "attempts-table" } },
          h("thead", null, h("tr", null, ["#", "Worker", "Resumed from epoch", "Started", "Ended", "Outcome"].map((t) => h("th", null, t)))),
          h("tbody", null, attempts.map((a) => h("tr", null,
            h("td", null, a.attempt), h("td", null, a.worker || "—"), h("td", { class: "num" }, a.resumed_from_epoch),
            h("td", null, fmtTime(a.started_at)), h("td", null, fmtTime(a.ended_at)), h("td", null, a.outcome || "running")))))));
    } catch (e) {
      clear(attemptsBox, notice(`Attempts unavailable: ${e.message}`, "warn"));
    }
  }

  // -- lab result ------------------------------------------------------------------------
  async function loadResult() {
    if (!LAB_KINDS.has(job.kind) && !job.auto_lr) return;
    try {
      const res = await api.get(`${path}/result`);
      if (!disposed) clear(resultBox, h("h2", null, "Result"), resultView(res.result, job));
    } catch (e) {
      if (e.status === 409) clear(resultBox, h("h2", null, "Result"), h("p", { class: "muted" }, "No result yet."));
      else clear(resultBox, notice(`Result unavailable: ${e.message}`, "warn"));
    }
  }

  // -- data: history, then the live stream -------------------------------------------
  function addEpoch(metrics) {
    rows.push(metrics);
    if (rows.length === 1 || !tbody) {
      drawTable(Object.keys(metrics));
      curves.load(rows);
    } else {
      addTableRow(metrics);
      curves.append(metrics.epoch, metrics, rows);
    }
  }

  const history = await api.get(`${path}/metrics`);
  rows.push(...history.epochs);
  drawTable(history.names);
  curves.load(rows);
  drawHeader();
  loadAttempts();
  loadResult();
  if (!rows.length && !ACTIVE.has(job.status)) chartsBox.append(h("p", { class: "muted" }, "No epochs were recorded."));

  if (ACTIVE.has(job.status)) {
    const last = rows.length ? rows[rows.length - 1].epoch : 0;
    stop = api.stream(`${path}/events`, {
      events: ["status", "epoch", "end"],
      query: { after: last },
      onEvent(name, data) {
        if (disposed || !data) return;
        if (name === "epoch") {
          const lastSeen = rows.length ? rows[rows.length - 1].epoch : 0;
          if (data.epoch <= lastSeen) return; // already drawn (history or a resend)
          addEpoch({ epoch: data.epoch, ...data.metrics });
          job = { ...job, epochs_completed: data.epoch };
          header.querySelector("[data-testid=epoch-count]").textContent = `${data.epoch}/${data.epochs}`;
        } else if (name === "status" || name === "end") {
          const attemptChanged = data.attempt !== job.attempt;
          job = { ...job, ...pickStatus(data) };
          drawHeader();
          if (attemptChanged) loadAttempts();
          if (name === "status") {
            // The event names the status; the job's other facts (started, device) move
            // with it: read them, keeping the epoch count the stream has moved on since.
            api.get(path).then((j) => {
              if (disposed) return;
              job = { ...j, epochs_completed: Math.max(j.epochs_completed, job.epochs_completed) };
              drawHeader();
            }).catch(() => {});
          }
          if (name === "end") {
            stop(); // the server closes the stream; don't let EventSource reconnect
            api.get(path).then((j) => { if (!disposed) { job = j; drawHeader(); loadAttempts(); loadResult(); } }).catch(() => {});
          }
        }
      },
      onError({ closed }) {
        if (closed && !disposed) clear(msg, notice("Live updates stopped; reload the page to refresh.", "warn", "stream-error"));
      },
    });
  }

  return () => {
    disposed = true;
    if (stop) stop();
    curves.destroy();
  };
}

function pickStatus(d) {
  const keys = ["status", "status_reason", "attempt", "epochs_completed", "epochs", "stop_epoch", "best_epoch", "best_value", "final_metrics"];
  return Object.fromEntries(keys.filter((k) => k in d).map((k) => [k, d[k]]));
}

/** A lab job's result as readable tables (the Lab page draws its charts). */
function resultView(r, job) {
  const out = h("div", { class: "card" });
  const kv = (pairs) => h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => [h("dt", null, k), h("dd", null, String(v))]));
  const suggestions = (list) => h("div", { class: "table-scroll" }, h("table", { dataset: { testid: "suggestions-table" } },
    h("thead", null, h("tr", null, ["Rule", "Learning rate", "Step", "Smoothed loss", "Why"].map((t) => h("th", null, t)))),
    h("tbody", null, list.map((s) => h("tr", null, h("td", null, s.rule), h("td", { class: "num" }, fmtNum(s.lr)),
      h("td", { class: "num" }, s.step), h("td", { class: "num" }, fmtNum(s.loss)), h("td", { class: "name" }, s.explanation))))));
  if (r.kind === "lr_range_test") {
    out.append(kv([["Stopped", r.stopped?.text], ["Steps run", r.steps_run],
      ["Lowest smoothed loss", r.best ? `${fmtNum(r.best.smoothed_loss)} at lr ${fmtNum(r.best.lr)} (step ${r.best.step})` : null],
      ["Rule asked for", r.suggestion], ["Device", r.device], ["Seconds", fmtNum(r.seconds)]]));
    out.append(h("h3", null, "Suggested learning rates"),
      r.suggestions.length ? suggestions(r.suggestions) : h("p", { class: "muted" }, "No rule found a rate."));
  } else if (r.kind === "auto_lr") {
    const a = r.auto_lr;
    out.append(kv([["Set", `${a.fields.join(", ")} = ${fmtNum(a.value)}`], ["Rule", a.rule],
      ["Rule's rate", fmtNum(a.suggested_lr)], ["Why", a.why]]));
    out.append(h("h3", null, "All suggestions"), suggestions(a.suggestions));
  } else if (r.kind === "landscape") {
    const line = r.interpolation || {};
    out.append(kv([
      ["Studied job", job.source_job_id],
      ["Directions", r.directions?.kind],
      ["Initial weights", line.initial ? `loss ${fmtNum(line.initial.loss)}, quality ${fmtNum(line.initial.quality)}` : null],
      ["Final weights", line.final ? `loss ${fmtNum(line.final.loss)}, quality ${fmtNum(line.final.quality)}` : null],
      ["Grid", r.surface ? `${r.surface.x.length} × ${r.surface.y.length}` : null],
    ]));
  }
  out.append(h("p", null, h("a", { href: `#/lab?job=${encodeURIComponent(job.id)}` }, "See the charts in the Lab →")));
  return out;
}
