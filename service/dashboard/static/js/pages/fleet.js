// #/fleet (admins): the queues — broker depth, queued jobs and the oldest one's wait,
// running jobs, live workers — and the workers — state (lost in red), device, torch,
// threads, what each runs — from GET /v1/workers, re-read every few seconds.
// The nav shows the link to admins only; anyone else who opens the page gets the API's
// 403 message.

import { api } from "../api.js";
import { h, clear, notice, fmtTime } from "../dom.js";

const REFRESH_MS = 3000;

/** Seconds as "4s", "3m 05s", "2h 10m", "3d 4h". */
export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function deviceText(d) {
  if (d.kind === "cpu" && d.name === "cpu") return "cpu";
  const memory = d.memory_bytes ? ` (${(d.memory_bytes / 2 ** 30).toFixed(1)} GiB)` : "";
  return `${d.kind} ${d.name}${memory}`;
}

function stateBadge(state) {
  return h("span", { class: `badge worker-${state}`, dataset: { testid: "worker-state" } }, state);
}

/** A running job: a link to its page when it is the viewer's (the API shows a user's
 * own jobs only), else its name and whose it is. */
function jobItem(job, me) {
  const progress = h("small", { class: "muted" }, ` ${job.epoch}/${job.epochs}`);
  const label = job.name || job.id;
  const name = job.owner_id === me
    ? h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, dataset: { testid: "worker-job" } }, label)
    : h("span", { dataset: { testid: "worker-job" }, title: job.id }, label,
        h("small", { class: "muted" }, ` (${job.owner || "another user"}'s)`));
  return h("li", null, name, progress);
}

function workerRow(w, me, now) {
  const running = w.running.length || w.held.length
    ? h("ul", { class: "plain" }, w.running.map((j) => jobItem(j, me)),
        w.held.length ? h("li", { class: "muted" }, `${w.held.length} received, not started`) : null)
    : h("span", { class: "muted" }, "—");
  const torch = (w.torch_version || "—") + (w.cuda_version ? ` cu${w.cuda_version}` : "");
  return h("tr", { class: `worker worker-row-${w.state}`, dataset: { testid: "worker-row", workerId: w.id } },
    h("td", { class: "name" }, h("code", null, w.id)),
    h("td", null, stateBadge(w.state)),
    h("td", null, w.queue),
    h("td", { dataset: { testid: "worker-device" } }, w.devices.map(deviceText).join(", ") || "—"),
    h("td", null, torch),
    h("td", { class: "num", dataset: { testid: "worker-threads" } }, w.torch_threads ?? "—"),
    h("td", { class: "num" }, w.concurrency),
    h("td", { class: "name", dataset: { testid: "worker-running" } }, running),
    h("td", { class: "num", title: fmtTime(w.heartbeat_at), dataset: { testid: "worker-heartbeat" } },
      `${fmtAge(w.heartbeat_age_seconds)} ago`),
    h("td", { class: "num", title: fmtTime(w.started_at) },
      `${fmtAge((Date.parse(now) - Date.parse(w.started_at)) / 1000)} ago`),
  );
}

function queueRow(q) {
  const depth = q.depth === null
    ? h("span", { title: q.broker_error || "the broker did not answer" }, "?")
    : q.depth;
  const starved = q.queued > 0 && q.workers === 0;
  return h("tr", { dataset: { testid: "queue-row", queue: q.name } },
    h("td", null, h("code", null, q.name)),
    h("td", { class: "num", dataset: { testid: "queue-depth" } }, depth),
    h("td", { class: "num", dataset: { testid: "queue-queued" } }, q.queued),
    h("td", { class: "num" }, fmtAge(q.oldest_queued_seconds)),
    h("td", { class: "num", dataset: { testid: "queue-running" } }, q.running),
    h("td", { class: "num", dataset: { testid: "queue-workers" } },
      starved ? h("span", { class: "badge worker-lost", title: "jobs wait and no live worker consumes this queue" }, "0") : q.workers),
  );
}

function table(testid, caption, headers, rows) {
  return h("div", { class: "table-scroll" }, h("table", { dataset: { testid } },
    h("caption", { class: "muted", style: "text-align:left;padding:.3rem .6rem" }, caption),
    h("thead", null, h("tr", null, headers.map(([text, num]) => h("th", { scope: "col", class: num ? "num" : null }, text)))),
    h("tbody", null, rows)));
}

export async function render(root, params, ctx) {
  document.title = "Fleet · Descent";
  let showAll = params.all === "true";
  let timer = null;
  let gone = false;

  const updated = h("span", { class: "muted", dataset: { testid: "fleet-updated" }, "aria-live": "off" });
  const allBox = h("input", { type: "checkbox", id: "fleet-all", checked: showAll, dataset: { testid: "fleet-all" },
    onchange: () => { showAll = allBox.checked; load(); } });
  const msg = h("div", { "aria-live": "polite" });
  const queues = h("section", { dataset: { testid: "fleet-queues" } });
  const workers = h("section", { dataset: { testid: "fleet-workers" } });
  clear(root,
    h("div", { class: "page-header" }, h("h1", null, "Fleet"), updated),
    h("p", { class: "muted" }, "A worker is ", h("strong", null, "lost"),
      " when its heartbeat is older than the lease and it never said it stopped; the reaper has already ",
      "handed its jobs back. Refreshed every few seconds."),
    msg, h("h2", null, "Queues"), queues,
    h("h2", null, "Workers"),
    h("div", { class: "toolbar" }, h("label", { for: "fleet-all" }, allBox, " Also workers that ended more than a day ago")),
    workers);

  async function load() {
    clearTimeout(timer);
    let fleet;
    try {
      fleet = await api.get("/v1/workers", { all: showAll ? "true" : null });
    } catch (e) {
      if (gone || e.status === 401) return; // a 401 has already moved to the sign-in page
      clear(msg, notice(e.status === 403 ? e.message : `Could not load the fleet: ${e.message}`, "error", "fleet-error"));
      // Being refused does not change by waiting; anything else may (a restart, a blip).
      if (e.status !== 403) timer = setTimeout(load, REFRESH_MS);
      return;
    }
    if (gone) return;
    clear(msg, fleet.broker_reachable ? null
      : notice(`The broker did not answer, so the queues' depths are unknown: ${
        fleet.queues.find((q) => q.broker_error)?.broker_error || "no reason given"}`, "warn", "fleet-broker"));
    clear(queues, table("queues-table", "Depth: messages waiting in the broker; queued: jobs waiting in the database.",
      [["Queue"], ["Depth", 1], ["Queued", 1], ["Oldest waiting", 1], ["Running", 1], ["Workers", 1]],
      fleet.queues.map(queueRow)));
    const hidden = fleet.hidden && !showAll
      ? h("p", { class: "muted", dataset: { testid: "fleet-hidden" } },
          `${fleet.hidden} more ended over a day ago.`)
      : null;
    clear(workers, fleet.workers.length
      ? table("workers-table", `${fleet.workers.length} workers; a lost worker's heartbeat is older than ${fleet.lease_seconds} s; slots: jobs it runs at once.`,
          [["Worker"], ["State"], ["Queue"], ["Device"], ["Torch"], ["Threads", 1], ["Slots", 1], ["Running"],
            ["Heartbeat", 1], ["Started", 1]],
          fleet.workers.map((w) => workerRow(w, ctx.user && ctx.user.id, fleet.now)))
      : notice("No worker has registered yet: start one with `descent worker` (or `descent up`).", "info", "fleet-empty"),
    hidden);
    updated.textContent = `updated ${fmtTime(fleet.now)}`;
    timer = setTimeout(load, REFRESH_MS);
  }

  await load();
  return () => {
    gone = true;
    clearTimeout(timer);
  };
}
