// The jobs table: filters (project, status, kind, name, and a search in the filter language
// of docs/search.md), server-side sort and paging, live status
// from ONE owner-scoped stream (GET /v1/jobs/events) that updates rows in place and adds
// new ones, cancel, and checkboxes to compare several jobs.

import { api } from "../api.js";
import { h, clear, field, notice, fmtNum, fmtTime, fmtDuration, statusBadge, ACTIVE } from "../dom.js";
import { labelChips } from "../labels.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "diverged"];
const KINDS = ["train", "lr_range_test", "landscape"];
// [key, header, API sort key or null, numeric?]
const COLUMNS = [
  ["name", "Name", "name"],
  ["status", "Status", "status"],
  ["kind", "Kind", null],
  ["epochs", "Epochs", "epochs_completed", true],
  ["best", "Best", null, true],
  ["created_at", "Created", "created_at"],
  ["started_at", "Started", "started_at"],
  ["duration", "Duration", "finished_at"],
];
const FILTER_EXAMPLES = [
  "optimizer.name = 'adam' and saved.val_accuracy > 0.97",
  "tags.stage = 'baseline' and status = 'succeeded'",
  "dataset.name in ('digits', 'iris') and not optimizer.name = 'sgd'",
  "best.val_loss < 0.1 or name contains 'warmup'",
];
const DEFAULTS = { project: "", filter: "", status: "", kind: "", name: "", sort: "-created_at", limit: "50", offset: "0" };

export async function render(root, params, ctx) {
  document.title = "Jobs · Descent";
  const q = { ...DEFAULTS, ...pick(params, Object.keys(DEFAULTS)) };
  const selected = new Set((params.selected || "").split(",").filter(Boolean));
  const rows = new Map(); // job id → {tr, job}
  let page = { items: [], total: 0 };
  let stopStream = null;
  let disposed = false;

  // -- controls -------------------------------------------------------------------------
  const statusSel = h("select", { dataset: { testid: "filter-status" } },
    h("option", { value: "" }, "any"),
    h("option", { value: "queued,running" }, "active (queued, running)"),
    STATUSES.map((s) => h("option", { value: s }, s)));
  const kindSel = h("select", { dataset: { testid: "filter-kind" } },
    h("option", { value: "" }, "any"), KINDS.map((k) => h("option", { value: k }, k)));
  const nameInput = h("input", { type: "search", placeholder: "part of a name", dataset: { testid: "filter-name" } });
  const projectSel = h("select", { dataset: { testid: "filter-project" } }, h("option", { value: "" }, "any"));
  const filterInput = h("input", { type: "search", size: 48, spellcheck: false, dataset: { testid: "filter-query" },
    placeholder: "optimizer.name = 'adam' and saved.val_accuracy > 0.97",
    "aria-describedby": "filter-help" });
  const filterForm = h("form", { class: "filter-form", role: "search", onsubmit: (ev) => {
    ev.preventDefault();
    q.filter = filterInput.value.trim();
    onFilter();
  } }, field("Filter", filterInput), h("button", { type: "submit", dataset: { testid: "filter-apply" } }, "Search"),
  h("small", { id: "filter-help", class: "muted" }, "Spec fields, tags.<key>, final./saved./best.<metric>, status, project; ",
    "and, or, not, ( ); sort by clicking a column."),
  h("details", { class: "filter-examples" }, h("summary", null, "Examples"), h("ul", null, FILTER_EXAMPLES.map((x) =>
    h("li", null, h("button", { type: "button", class: "link", onclick: () => { filterInput.value = x; filterInput.focus(); } },
      h("code", null, x)))))));
  const limitSel = h("select", { dataset: { testid: "page-size" } },
    ["25", "50", "100", "200"].map((n) => h("option", { value: n }, n)));
  statusSel.value = q.status;
  kindSel.value = q.kind;
  nameInput.value = q.name;
  filterInput.value = q.filter;
  limitSel.value = q.limit;

  const compareBtn = h("button", { type: "button", dataset: { testid: "compare-selected" }, onclick: () => {
    ctx.navigate(`#/compare?ids=${[...selected].map(encodeURIComponent).join(",")}`);
  } });
  const liveNote = h("span", { class: "muted", dataset: { testid: "live-state" }, "aria-live": "polite" });
  const msg = h("div");
  const tbody = h("tbody");
  const thead = h("thead");
  const pager = h("div", { class: "pager", dataset: { testid: "pager" } });

  let nameTimer = 0;
  const onFilter = () => { q.offset = "0"; reload(); };
  statusSel.addEventListener("change", () => { q.status = statusSel.value; onFilter(); });
  kindSel.addEventListener("change", () => { q.kind = kindSel.value; onFilter(); });
  projectSel.addEventListener("change", () => { q.project = projectSel.value; onFilter(); });
  limitSel.addEventListener("change", () => { q.limit = limitSel.value; onFilter(); });
  nameInput.addEventListener("input", () => {
    clearTimeout(nameTimer);
    nameTimer = setTimeout(() => { q.name = nameInput.value.trim(); onFilter(); }, 300);
  });

  clear(
    root,
    h("div", { class: "page-header" }, h("h1", null, "Jobs"),
      h("a", { class: "button primary", href: "#/new", dataset: { testid: "new-job" } }, "New job"), liveNote),
    filterForm,
    h("div", { class: "toolbar", role: "search" },
      field("Project", projectSel), field("Status", statusSel), field("Kind", kindSel), field("Name", nameInput),
      field("Per page", limitSel), h("div", { class: "field" }, h("span", null, "\u00a0"), compareBtn)),
    msg,
    h("div", { class: "table-scroll" },
      h("table", { dataset: { testid: "jobs-table" } }, h("caption", { class: "muted", style: "text-align:left;padding:.3rem .6rem" },
        "Your jobs; select two or more to compare them."), thead, tbody)),
    pager,
  );

  // -- table ----------------------------------------------------------------------------
  function drawHead() {
    const sortKey = q.sort.replace(/^-/, "");
    const desc = q.sort.startsWith("-");
    clear(thead, h("tr", null,
      h("th", null, h("span", { class: "visually-hidden" }, "Select")),
      COLUMNS.map(([key, label, apiKey, num]) => {
        if (!apiKey) return h("th", { class: num ? "num" : null }, label);
        const active = sortKey === apiKey;
        return h("th", { class: num ? "num" : null, "aria-sort": active ? (desc ? "descending" : "ascending") : null },
          h("button", {
            type: "button", class: "sort", dataset: { testid: `sort-${apiKey}`, arrow: active ? (desc ? "▼" : "▲") : "" },
            "aria-sort": active ? "true" : null,
            title: `Sort by ${label.toLowerCase()}`,
            onclick: () => {
              // First click on a column: newest/largest first; again: flip.
              q.sort = active ? (desc ? apiKey : `-${apiKey}`) : `-${apiKey}`;
              q.offset = "0";
              reload();
            },
          }, label));
      }),
      h("th", null, "Actions")));
  }

  function rowCells(job) {
    const box = h("input", {
      type: "checkbox", checked: selected.has(job.id), dataset: { testid: "job-select" },
      "aria-label": `Select ${job.name} to compare`,
      onchange: (e) => { if (e.target.checked) selected.add(job.id); else selected.delete(job.id); drawCompare(); },
    });
    const cancel = ACTIVE.has(job.status)
      ? h("button", { type: "button", class: "danger", dataset: { testid: "cancel" }, disabled: !!job.cancel_requested,
          "aria-label": `Cancel ${job.name}`, onclick: () => cancelJob(job.id) },
        job.cancel_requested ? "Cancelling…" : "Cancel")
      : null;
    return [
      h("td", null, box),
      h("td", { class: "name" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, dataset: { testid: "job-link" } }, job.name),
        job.sweep_id ? h("small", { class: "muted" }, " · ", h("a", { href: `#/sweeps/${encodeURIComponent(job.sweep_id)}` }, "sweep")) : null,
        labelChips(job)),
      h("td", { title: job.status_reason || "" }, statusBadge(job.status),
        job.attempt > 1 ? h("small", { class: "muted", title: "resumed after a lost worker" }, ` attempt ${job.attempt}`) : null,
        job.status_reason && !ACTIVE.has(job.status) ? h("div", { class: "muted reason", dataset: { testid: "job-reason" } }, short(job.status_reason)) : null),
      h("td", null, job.kind),
      h("td", { class: "num", dataset: { testid: "epoch-count" } }, `${job.epochs_completed ?? 0}/${job.epochs ?? "?"}`),
      h("td", { class: "num" }, job.best_value === null || job.best_value === undefined ? "—"
        : `${fmtNum(job.best_value)}${job.best_epoch ? ` @${job.best_epoch}` : ""}`),
      h("td", null, fmtTime(job.created_at)),
      h("td", null, fmtTime(job.started_at)),
      h("td", null, job.started_at ? fmtDuration(job.started_at, job.finished_at) : "—"),
      h("td", null, cancel),
    ];
  }

  function drawRow(job) {
    const existing = rows.get(job.id);
    const tr = existing ? existing.tr : h("tr", { dataset: { testid: "job-row", jobId: job.id } });
    tr.dataset.status = job.status;
    clear(tr, rowCells(job));
    rows.set(job.id, { tr, job });
    return tr;
  }

  function drawBody() {
    rows.clear();
    const shown = page.items.filter(matchesName);
    clear(tbody, shown.length ? shown.map(drawRow)
      : h("tr", null, h("td", { colspan: COLUMNS.length + 2, class: "muted", dataset: { testid: "jobs-empty" } },
          page.total ? "No job on this page matches the name." : "No jobs yet. ", page.total ? null : h("a", { href: "#/new" }, "Start one"))));
  }

  function drawPager() {
    const off = Number(q.offset);
    const lim = Number(q.limit);
    const from = page.total ? off + 1 : 0;
    const to = Math.min(off + page.items.length, page.total);
    clear(pager,
      h("button", { type: "button", disabled: off <= 0, dataset: { testid: "page-prev" },
        onclick: () => { q.offset = String(Math.max(0, off - lim)); reload(); } }, "‹ Previous"),
      h("span", { dataset: { testid: "page-info" } }, `${from}–${to} of ${page.total}`),
      h("button", { type: "button", disabled: off + lim >= page.total, dataset: { testid: "page-next" },
        onclick: () => { q.offset = String(off + lim); reload(); } }, "Next ›"));
  }

  function drawCompare() {
    compareBtn.textContent = `Compare selected (${selected.size})`;
    compareBtn.disabled = selected.size < 2;
  }

  const matchesName = (job) => !q.name || job.name.toLowerCase().includes(q.name.toLowerCase());
  // A job the stream announces can be placed only when the page's filters can be checked
  // here: not with a search expression (the server evaluates those).
  const matchesFilters = (job) => matchesName(job) && !q.filter
    && (!q.project || job.project === q.project)
    && (!q.status || q.status.split(",").includes(job.status))
    && (!q.kind || q.kind.split(",").includes(job.kind));

  async function cancelJob(id) {
    try {
      const job = await api.post(`/v1/jobs/${encodeURIComponent(id)}/cancel`);
      if (rows.has(id)) drawRow({ ...rows.get(id).job, ...job });
    } catch (e) {
      clear(msg, notice(`Could not cancel: ${e.message}`, "error", "cancel-error"));
    }
  }

  async function reload() {
    // Keep the view in the address (shareable, survives reload) without re-routing.
    const qs = new URLSearchParams(Object.entries(q).filter(([k, v]) => v !== DEFAULTS[k]));
    history.replaceState(null, "", `#/jobs${qs.toString() ? `?${qs}` : ""}`);
    drawHead();
    try {
      // The server filters (name: any part, ignoring case); matchesFilters() applies the
      // same rules to jobs the live stream announces.
      page = await api.get("/v1/jobs", { project: q.project, filter: q.filter, status: q.status, kind: q.kind, name: q.name,
        sort: q.sort, limit: q.limit, offset: q.offset });
      if (disposed) return;
      clear(msg);
      drawBody();
      drawPager();
    } catch (e) {
      if (disposed) return;
      // A filter the server refused: its message points at the offending token.
      const bad = e.status === 422 && e.fields.find((f) => f.field === "filter");
      clear(msg, notice(bad ? `Filter: ${bad.message}` : `Could not list jobs: ${e.message}`, "error",
        bad ? "filter-error" : "jobs-error"));
      if (bad) { page = { items: [], total: 0 }; drawBody(); drawPager(); }
    }
  }

  // -- live updates -----------------------------------------------------------------------
  function onJobEvent(name, data) {
    if (name !== "job" || !data || !data.id) return;
    const known = rows.get(data.id);
    if (known) {
      drawRow({ ...known.job, ...data });
      return;
    }
    // A job not on this page: show it if it is new, fits the filters and belongs at the
    // top (first page, newest first); otherwise the next reload will place it.
    const isNew = !page.items.some((j) => j.id === data.id);
    if (isNew && q.offset === "0" && q.sort === "-created_at" && matchesFilters(data)) {
      page.items.unshift(data);
      page.total += 1;
      const tr = drawRow(data);
      tbody.querySelector("[data-testid=jobs-empty]")?.closest("tr")?.remove();
      tbody.prepend(tr);
      drawPager();
    }
  }

  function startStream() {
    stopStream = api.stream("/v1/jobs/events", {
      events: ["job"],
      onEvent: onJobEvent,
      onOpen: () => { liveNote.textContent = "● live"; liveNote.dataset.state = "live"; },
      onError: ({ closed }) => {
        if (closed) {
          liveNote.dataset.state = "off";
          clear(liveNote, "Live updates unavailable on this server. ",
            h("button", { type: "button", class: "link", onclick: reload, dataset: { testid: "refresh" } }, "Refresh"));
        } else {
          liveNote.textContent = "reconnecting…";
          liveNote.dataset.state = "reconnecting";
        }
      },
    });
  }

  drawCompare();
  api.get("/v1/projects", { limit: 200 }).then((p) => {
    projectSel.append(...p.items.map((x) => h("option", { value: x.name }, `${x.name} (${x.jobs})`)));
    if (q.project && !p.items.some((x) => x.name === q.project)) projectSel.append(h("option", { value: q.project }, q.project));
    projectSel.value = q.project;
  }).catch(() => {}).finally(() => { projectSel.dataset.loaded = "true"; });
  await reload();
  if (!disposed) startStream();
  return () => {
    disposed = true;
    clearTimeout(nameTimer);
    if (stopStream) stopStream();
  };
}

function pick(obj, keys) {
  return Object.fromEntries(keys.filter((k) => obj[k] !== undefined).map((k) => [k, String(obj[k])]));
}

function short(text, n = 120) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
