// New job: a form generated from GET /v1/catalog beside a JSON/YAML editor, kept in sync
// both ways; POST /v1/jobs; a 422's field errors shown at the input they name (or in the
// editor panel when no input has that path). #/new?from=<id> starts from a job's spec.

import { load as yamlLoad, dump as yamlDump } from "/static/vendor/js-yaml/dist/js-yaml.mjs";
import { api } from "../api.js";
import { h, clear, field, notice } from "../dom.js";
import { getPath, setPath, paramInput, choiceSelect, setError } from "../specform.js";

const START = {
  name: "my-job",
  dataset: { name: "digits" },
  model: { kind: "mlp", hidden: [64] },
  optimizer: { name: "adam", lr: 0.001 },
  schedule: { name: "constant" },
  training: { epochs: 20, batch_size: 32 },
};

export async function render(root, params, ctx) {
  document.title = "New job · Descent";
  const catalog = await api.get("/v1/catalog");
  let spec = structuredClone(START);
  let origin = null;
  if (params.from) {
    const job = await api.get(`/v1/jobs/${encodeURIComponent(params.from)}`);
    origin = job;
    spec = structuredClone(job.spec);
    // Fields the server fills in for lab jobs only get in the way of an edit when null.
    for (const k of ["range_test", "landscape", "name"]) if (spec[k] === null) delete spec[k];
  }
  let format = "json";

  const formEl = h("form", { class: "spec-form", dataset: { testid: "spec-form" }, novalidate: true,
    onsubmit: (e) => { e.preventDefault(); submit(); } });
  const editor = h("textarea", { class: "code", spellcheck: "false", dataset: { testid: "spec-editor" },
    "aria-describedby": "editor-errors" });
  const editorErrors = h("div", { id: "editor-errors", dataset: { testid: "editor-errors" }, "aria-live": "polite" });
  const formatBtn = h("button", { type: "button", dataset: { testid: "format-toggle" }, onclick: toggleFormat });
  const summary = h("div", { "aria-live": "assertive" });
  const submitBtn = h("button", { type: "button", class: "primary", dataset: { testid: "submit" }, onclick: submit }, "Submit job");

  clear(root,
    h("div", { class: "page-header" }, h("h1", null, origin ? `New job from “${origin.name}”` : "New job")),
    origin ? h("p", { class: "muted" }, "Started from the spec of ", h("a", { href: `#/jobs/${encodeURIComponent(origin.id)}` }, origin.name),
      " (with every default filled in).") : null,
    summary,
    h("div", { class: "two-col" },
      h("section", { class: "card", "aria-label": "Form" }, formEl),
      h("section", { class: "card", "aria-label": "Spec editor" },
        h("div", { class: "actions" }, h("label", { for: editor.id = "spec-editor" }, h("strong", null, "Spec")), formatBtn),
        editor, editorErrors)),
    h("div", { class: "actions sticky-actions" }, submitBtn, h("a", { class: "button", href: "#/jobs" }, "Back to jobs")),
  );

  // -- the editor ---------------------------------------------------------------------
  function writeEditor() {
    editor.value = format === "json" ? JSON.stringify(spec, null, 2) : yamlDump(spec, { lineWidth: 100 });
    formatBtn.textContent = format === "json" ? "Show as YAML" : "Show as JSON";
    formatBtn.setAttribute("aria-label", `Editor shows ${format.toUpperCase()}; switch`);
  }

  /** Parse the editor's text; on success it becomes the spec. Returns false on a syntax error. */
  function readEditor() {
    try {
      const parsed = format === "json" ? JSON.parse(editor.value) : yamlLoad(editor.value);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the spec must be an object");
      spec = parsed;
      clear(editorErrors);
      return true;
    } catch (e) {
      clear(editorErrors, notice(`${format.toUpperCase()} error: ${e.message}`, "error", "editor-parse-error"));
      return false;
    }
  }

  function toggleFormat() {
    if (!readEditor()) return; // keep the text as typed until it parses
    format = format === "json" ? "yaml" : "json";
    writeEditor();
  }

  let typing = 0;
  editor.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { if (readEditor()) drawForm(); }, 400);
  });

  // -- the form -------------------------------------------------------------------------
  function onValue(path, value) {
    setPath(spec, path, value);
    writeEditor();
  }

  /** A union section: a select of its members, then the chosen member's parameters.
   * Changing the member keeps the parameters both members share (lr, weight_decay…). */
  function unionSection(title, section, entries, key) {
    const current = getPath(spec, `${section}.${key}`) || entries[0][key];
    const entry = entries.find((e) => e[key] === current) || entries[0];
    const values = spec[section] || {};
    return h("fieldset", null, h("legend", null, title),
      h("div", { class: "form-grid" },
        choiceSelect(`${section}.${key}`, entries, key, current, (next) => {
          const nextEntry = entries.find((e) => e[key] === next);
          const kept = { [key]: next };
          for (const p of nextEntry.params) if (p.name in values) kept[p.name] = values[p.name];
          spec[section] = kept;
          writeEditor();
          drawForm();
        }),
        entry.params.map((p) => paramInput(p, `${section}.${p.name}`, values[p.name], onValue))));
  }

  function plainSection(title, section, params, { optional = false } = {}) {
    const values = getPath(spec, section);
    const on = values !== null && values !== undefined;
    const toggle = optional
      ? field(`use ${section.split(".").pop().replace("_", " ")}`, h("input", {
          type: "checkbox", checked: on, dataset: { field: section, testid: `toggle-${section}` },
          onchange: (e) => { setPath(spec, section, e.target.checked ? {} : null); writeEditor(); drawForm(); },
        }))
      : null;
    return h("fieldset", null, h("legend", null, title), toggle,
      !optional || on ? h("div", { class: "form-grid" },
        params.map((p) => paramInput(p, `${section}.${p.name}`, (values || {})[p.name], onValue))) : null);
  }

  function drawForm() {
    const kinds = catalog.kinds;
    const kind = spec.kind || "train";
    const general = h("fieldset", null, h("legend", null, "Job"),
      h("div", { class: "form-grid" },
        paramInput({ name: "name", type: "string | null", description: "A display label" }, "name", spec.name ?? null, onValue),
        paramInput({ name: "kind", type: "string", choices: kinds.kinds, default: "train" }, "kind", spec.kind, (path, v) => {
          onValue(path, v);
          drawForm();
        })));
    const autoLr = spec.optimizer?.lr === "auto" || spec.schedule?.max_lr === "auto";
    clear(formEl,
      general,
      kind === "landscape" ? plainSection("Landscape", "landscape", kinds.landscape) : null,
      unionSection("Dataset", "dataset", catalog.datasets, "name"),
      unionSection("Model", "model", catalog.models, "kind"),
      unionSection("Optimizer", "optimizer", catalog.optimizers, "name"),
      unionSection("Schedule", "schedule", catalog.schedules, "name"),
      plainSection("Regularization", "regularization", catalog.regularization.params),
      plainSection("Early stopping", "regularization.early_stopping", catalog.regularization.early_stopping, { optional: true }),
      plainSection("Gradient clipping", "regularization.grad_clip", catalog.regularization.grad_clip, { optional: true }),
      plainSection("Training", "training", catalog.training),
      kind === "lr_range_test" || autoLr || spec.range_test
        ? plainSection("Range test", "range_test", kinds.range_test, { optional: kind !== "lr_range_test" }) : null,
      h("p", { class: "muted" }, `Limits: at most ${catalog.limits.max_epochs} epochs, ${catalog.limits.max_parameters.toLocaleString()} parameters. `,
        "Anything the form lacks can be typed in the editor."),
    );
  }

  // -- submit ---------------------------------------------------------------------------
  async function submit() {
    clearTimeout(typing);
    if (!readEditor()) return;
    drawForm();
    clear(summary);
    submitBtn.disabled = true;
    try {
      const job = await api.post("/v1/jobs", spec);
      ctx.navigate(`#/jobs/${encodeURIComponent(job.id)}`);
    } catch (e) {
      showErrors(e);
    } finally {
      submitBtn.disabled = false;
    }
  }

  /** Put each field error at its input: the exact path, else the nearest enclosing one
   * (optimizer.betas.1 → optimizer.betas); what has no input goes to the editor panel. */
  function showErrors(e) {
    const fields = e.fields || [];
    const unplaced = [];
    let first = null;
    for (const f of fields) {
      const text = f.message + (f.allowed && f.allowed.length ? ` (allowed: ${f.allowed.join(", ")})` : "");
      let path = String(f.field || "");
      // A union's own error ("optimizer": unknown name) goes to its member select.
      let control = f.field ? formEl.querySelector(`[data-field^="${CSS.escape(f.field)}."]`) : null;
      if (control && !/\.(name|kind)$/.test(control.dataset.field)) control = null;
      while (!control && path && !(control = formEl.querySelector(`[data-field="${CSS.escape(path)}"]`))) {
        path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
      }
      const wrap = control && control.closest(".field");
      if (wrap) {
        setError(wrap, f.field === path ? text : `${f.field}: ${text}`);
        first = first || control;
      } else unplaced.push(h("li", { dataset: { testid: "field-error" } }, h("code", null, f.field || "(spec)"), `: ${text}`));
    }
    clear(summary, notice(`${e.status === 422 ? "The spec was refused" : "Submit failed"}: ${e.message}`, "error", "submit-error"));
    if (unplaced.length) editorErrors.append(h("div", { class: "notice error" }, h("ul", null, unplaced)));
    if (first) first.focus();
  }

  writeEditor();
  drawForm();
  return () => clearTimeout(typing);
}
