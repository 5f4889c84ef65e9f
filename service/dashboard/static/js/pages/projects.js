// Projects: each with its job and sweep counts, a link to its jobs, and rename in place.

import { api } from "../api.js";
import { h, clear, notice, fmtTime } from "../dom.js";

export async function render(root) {
  document.title = "Projects · Descent";
  const msg = h("div", { "aria-live": "polite" });
  const tbody = h("tbody");

  function renameForm(project, cell) {
    const input = h("input", { type: "text", value: project.name, maxlength: 100, "aria-label": `New name for ${project.name}`,
      dataset: { testid: "project-rename-input" } });
    const form = h("form", { class: "tag-row", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await api.patch(`/v1/projects/${encodeURIComponent(project.id)}`, { name: input.value.trim() });
        clear(msg, notice("Renamed.", "info", "project-message"));
        await load();
      } catch (e) {
        clear(msg, notice(`Not renamed: ${e.message}`, "error", "project-error"));
      }
    } }, input, h("button", { type: "submit", dataset: { testid: "project-rename-save" } }, "Save"),
    h("button", { type: "button", class: "link", onclick: () => load() }, "cancel"));
    clear(cell, form);
    input.focus();
  }

  function row(p) {
    const nameCell = h("td", { class: "name" },
      h("a", { href: `#/jobs?project=${encodeURIComponent(p.name)}`, dataset: { testid: "project-link" } }, p.name));
    return h("tr", { dataset: { testid: "project-row" } }, nameCell,
      h("td", { class: "num" }, p.jobs), h("td", { class: "num" }, p.sweeps), h("td", null, fmtTime(p.created_at)),
      h("td", null, h("button", { type: "button", dataset: { testid: "project-rename" },
        onclick: () => renameForm(p, nameCell) }, "Rename")));
  }

  async function load() {
    const page = await api.get("/v1/projects", { limit: 200 });
    clear(tbody, page.items.length ? page.items.map(row)
      : h("tr", null, h("td", { colspan: 5, class: "muted", dataset: { testid: "projects-empty" } },
          "No projects yet: submit a job with \"project\": \"name\", or set one on a job's page.")));
  }

  clear(root, h("div", { class: "page-header" }, h("h1", null, "Projects")), msg,
    h("div", { class: "table-scroll" }, h("table", { dataset: { testid: "projects-table" } },
      h("thead", null, h("tr", null, ["Project", "Jobs", "Sweeps", "Created", ""].map((t) => h("th", null, t)))), tbody)));
  await load();
}
