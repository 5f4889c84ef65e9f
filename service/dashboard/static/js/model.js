// A succeeded job's model: which epoch's weights it kept, its downloads (the bundle, the
// ONNX graph, the bare state dict) and a panel that predicts on pasted or uploaded rows
// through POST /v1/jobs/{id}/predict.

import { api } from "./api.js";
import { h, clear, field, notice, fmtNum, downloadText } from "./dom.js";

const MAX_SHOWN = 200; // rows drawn in the answer's table; the CSV download has them all

/** The panel for `job` (a JobRead), or null when it kept no weights. */
export function modelPanel(job) {
  if (job.status !== "succeeded" || !job.has_model) return null;
  const path = `/v1/jobs/${encodeURIComponent(job.id)}`;
  const box = h("section", { dataset: { testid: "model-panel" }, "aria-label": "Model" });
  const saved = job.saved_epoch
    ? h("p", { dataset: { testid: "saved-epoch" } },
        `The weights are epoch ${job.saved_epoch}'s`,
        job.saved_epoch !== job.epochs_completed ? " (the best; early stopping restored them)" : " (the last)",
        savedSummary(job))
    : null;
  const download = (format, text, testid) => h("a", { class: "button", href: api.url(`${path}/model`, { format }),
    download: "", dataset: { testid } }, text);
  const downloads = h("div", { class: "actions" },
    job.has_bundle ? download("bundle", "Download bundle (.zip)", "download-bundle") : null,
    job.has_bundle ? download("onnx", "ONNX", "download-onnx") : null,
    download("state_dict", "State dict (.pt)", "model-download"),
    job.has_bundle ? null : h("span", { class: "muted" }, "Trained before bundles: only the state dict is kept."));
  clear(box, h("h2", null, "Model"), saved, downloads,
    job.has_bundle ? h("p", { class: "muted" }, "Load the bundle with ", h("code", null, "descent.load_model(path)"),
      "; the ONNX graph takes raw features (the scaling is inside it).") : null,
    job.has_bundle ? predictPanel(job, path) : null);
  return box;
}

function savedSummary(job) {
  const m = job.saved_metrics || {};
  const keys = ["val_accuracy", "val_loss", "val_r2", "val_mae"].filter((k) => m[k] !== undefined && m[k] !== null);
  return keys.length ? `: ${keys.map((k) => `${k} ${fmtNum(m[k])}`).join(", ")}.` : ".";
}

function predictPanel(job, path) {
  const box = h("div", { class: "card", dataset: { testid: "predict" } });
  const text = h("textarea", { class: "code", rows: 6, style: { minHeight: "8rem" }, spellcheck: false,
    placeholder: "CSV with a header row naming the features, or JSON: {\"rows\": [[…], …]}",
    dataset: { testid: "predict-input" } });
  const file = h("input", { type: "file", accept: ".csv,text/csv", dataset: { testid: "predict-file" } });
  const run = h("button", { type: "submit", class: "primary", dataset: { testid: "predict-run" } }, "Predict");
  const out = h("div", { "aria-live": "polite", dataset: { testid: "predict-output" } });
  let features = null;

  async function loadFeatures() {
    // The features the model takes: a one-row answer names them. Shown as the CSV header to
    // fill in, so a user knows what to paste.
    try {
      const r = await api.get(`${path}/model`, { format: "manifest" });
      features = r.input.feature_names;
    } catch {
      features = null;
    }
    if (features && !text.value) text.placeholder = `${features.join(",")}\n…one row of raw values per line`;
  }

  async function submit(ev) {
    ev.preventDefault();
    run.disabled = true;
    clear(out, h("p", { class: "loading" }, "Predicting…"));
    try {
      let answer;
      if (file.files && file.files.length) {
        const form = new FormData();
        form.append("file", file.files[0]);
        answer = await api.postRaw(`${path}/predict`, form);
      } else {
        const raw = text.value.trim();
        if (!raw) throw Object.assign(new Error("paste rows or choose a CSV file first"), { fields: [] });
        answer = raw.startsWith("{") || raw.startsWith("[")
          ? await api.postRaw(`${path}/predict`, raw.startsWith("[") ? JSON.stringify({ rows: JSON.parse(raw) }) : raw,
              "application/json")
          : await api.postRaw(`${path}/predict`, `${raw}\n`, "text/csv");
      }
      clear(out, answerView(answer, job));
    } catch (e) {
      const where = (e.fields || []).slice(0, 5).map((f) => `${f.field}: ${f.message}`).join("; ");
      clear(out, notice(where ? `${e.message} (${where})` : e.message, "error", "predict-error"));
    } finally {
      run.disabled = false;
    }
  }

  clear(box, h("h3", null, "Predict"),
    h("form", { onsubmit: submit },
      field("Rows (raw values, as in the training data)", text),
      field("…or a CSV file", file),
      h("div", { class: "actions" }, run)),
    out);
  loadFeatures();
  return box;
}

function answerView(a, job) {
  const probs = a.probabilities;
  const head = ["#", "prediction", ...(probs ? a.labels.map((l) => `p(${l})`) : [])];
  const rows = a.predictions.slice(0, MAX_SHOWN).map((p, i) => h("tr", { dataset: { testid: "prediction-row" } },
    h("td", { class: "num" }, i + 1),
    h("td", { dataset: { testid: "prediction" } }, typeof p === "number" ? fmtNum(p) : p),
    probs ? probs[i].map((v) => h("td", { class: "num" }, fmtNum(v, 3))) : null));
  const csv = [head.slice(1).join(","), ...a.predictions.map((p, i) =>
    [csvCell(p), ...(probs ? probs[i] : [])].join(","))].join("\n");
  return h("div", null,
    h("p", { class: "muted" }, `${a.n_rows} row(s), weights of epoch ${a.saved_epoch}.`,
      a.n_rows > MAX_SHOWN ? ` The first ${MAX_SHOWN} are shown.` : null, " ",
      h("button", { type: "button", class: "link", dataset: { testid: "predict-download" },
        onclick: () => downloadText(`${job.name}-predictions.csv`, `${csv}\n`, "text/csv") }, "Download CSV")),
    h("div", { class: "table-scroll" }, h("table", { dataset: { testid: "predict-table" } },
      h("thead", null, h("tr", null, head.map((t, i) => h("th", { class: i === 1 ? null : "num" }, t)))),
      h("tbody", null, rows))));
}

function csvCell(v) {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
