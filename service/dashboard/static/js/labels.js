// What organises a job or a sweep: its project, key/value tags and a note. Shown on the
// job's page and edited in place with one PATCH of the fields that changed.

import { api } from "./api.js";
import { h, clear, field, notice, uid } from "./dom.js";

/** Small chips for a row of a table: "project · k=v · k=v". */
export function labelChips(item) {
  const chips = [];
  if (item.project) {
    chips.push(h("a", { class: "chip project", href: `#/jobs?project=${encodeURIComponent(item.project)}`,
      dataset: { testid: "project-chip" } }, item.project));
  }
  for (const [k, v] of Object.entries(item.tags || {})) {
    chips.push(h("span", { class: "chip", dataset: { testid: "tag-chip" } }, `${k}=${v}`));
  }
  return chips.length ? h("div", { class: "chips" }, chips) : null;
}

/**
 * The editor: `path` is the item's URL (PATCH goes there), `item` what GET answered.
 * `onSaved(updated)` gets the PATCH's answer.
 */
export function labelsPanel(item, path, onSaved) {
  const box = h("section", { class: "card labels", dataset: { testid: "labels" }, "aria-label": "Project, tags and note" });
  const msg = h("div", { "aria-live": "polite" });
  const listId = uid("projects");
  const projectInput = h("input", { type: "text", list: listId, placeholder: "none", maxlength: 100,
    dataset: { testid: "project-input" } });
  const projectList = h("datalist", { id: listId });
  const tagRows = h("div", { class: "tag-rows", dataset: { testid: "tag-rows" } });
  const noteInput = h("textarea", { rows: 3, maxlength: 10000, placeholder: "What this run is for, what you saw…",
    dataset: { testid: "note-input" } });
  const save = h("button", { type: "submit", class: "primary", dataset: { testid: "labels-save" } }, "Save");

  function tagRow(key = "", value = "") {
    const k = h("input", { type: "text", value: key, placeholder: "key", "aria-label": "Tag key", size: 12,
      dataset: { testid: "tag-key" } });
    const v = h("input", { type: "text", value, placeholder: "value", "aria-label": "Tag value", size: 18,
      dataset: { testid: "tag-value" } });
    const row = h("div", { class: "tag-row" }, k, v,
      h("button", { type: "button", class: "link", "aria-label": "Remove this tag", dataset: { testid: "tag-remove" },
        onclick: () => row.remove() }, "remove"));
    return row;
  }

  function fill(current) {
    projectInput.value = current.project || "";
    clear(tagRows, Object.entries(current.tags || {}).map(([k, v]) => tagRow(k, v)));
    noteInput.value = current.note || "";
  }

  function readTags() {
    const tags = {};
    for (const row of tagRows.querySelectorAll(".tag-row")) {
      const [k, v] = row.querySelectorAll("input");
      if (k.value.trim()) tags[k.value.trim()] = v.value;
    }
    return tags;
  }

  async function submit(ev) {
    ev.preventDefault();
    // Only what changed: a PATCH leaves the fields it is not sent alone.
    const body = {};
    const project = projectInput.value.trim() || null;
    if (project !== (item.project || null)) body.project = project;
    const tags = readTags();
    if (JSON.stringify(tags) !== JSON.stringify(item.tags || {})) body.tags = tags;
    if (noteInput.value !== (item.note || "")) body.note = noteInput.value;
    if (!Object.keys(body).length) {
      clear(msg, notice("Nothing changed.", "info", "labels-message"));
      return;
    }
    save.disabled = true;
    try {
      item = await api.patch(path, body);
      fill(item);
      clear(msg, notice("Saved.", "info", "labels-message"));
      onSaved(item);
    } catch (e) {
      const where = e.fields.map((f) => `${f.field}: ${f.message}`).join("; ");
      clear(msg, notice(`Not saved: ${where || e.message}`, "error", "labels-error"));
    } finally {
      save.disabled = false;
    }
  }

  const form = h("form", { onsubmit: submit },
    h("div", { class: "form-grid" }, field("Project", projectInput, { hint: "Made on first use." }), projectList),
    h("fieldset", null, h("legend", null, "Tags"), tagRows,
      h("button", { type: "button", dataset: { testid: "tag-add" }, onclick: () => {
        const row = tagRow();
        tagRows.append(row);
        row.querySelector("input").focus();
      } }, "Add tag")),
    field("Note", noteInput),
    h("div", { class: "actions" }, save),
    msg);
  clear(box, h("h2", null, "Project, tags and note"), form);
  fill(item);
  api.get("/v1/projects", { limit: 200 }).then((page) => {
    clear(projectList, page.items.map((p) => h("option", { value: p.name })));
  }).catch(() => {});
  return box;
}
