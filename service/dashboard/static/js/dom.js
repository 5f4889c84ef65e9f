// Tiny DOM helpers. Everything user-supplied goes in as text (textContent / attributes),
// never as HTML: there is deliberately no innerHTML anywhere in the dashboard.

/**
 * h("a", {href: "#/jobs", class: "x", onclick: fn, dataset: {testid: "y"}}, "text", child, [more])
 * - attrs: `class`, `style` (string or object), `dataset` (object), `on<event>` (function),
 *   boolean/property-like keys (`checked`, `disabled`, `value`, `selected`) set as properties,
 *   anything else via setAttribute; null/undefined/false values are skipped.
 * - children: strings/numbers become text nodes; arrays are flattened; null/false skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key in PROPS) el[key] = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

const PROPS = { checked: 1, disabled: 1, value: 1, selected: 1, indeterminate: 1, hidden: 1 };

/** Append children (text, nodes, nested arrays) to el. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all of el's children. */
export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: <label>text <control></label> plus a hint and an error slot. */
export function field(labelText, control, { hint, testid } = {}) {
  const id = control.id || (control.id = uid("f"));
  return h(
    "div",
    { class: "field", dataset: testid ? { testid } : undefined },
    h("label", { for: id }, labelText),
    control,
    hint ? h("small", { class: "hint" }, hint) : null,
  );
}

let counter = 0;
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

// -- formatting -----------------------------------------------------------------------

/** A number for a table cell: null/non-finite shown as such, else 4 significant digits. */
export function fmtNum(v, digits = 4) {
  if (v === null || v === undefined || v === "") return "—";
  const n = Number(v);
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "∞" : "−∞";
  if (Number.isInteger(n) && Math.abs(n) < 1e9) return String(n);
  const a = Math.abs(n);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return n.toExponential(digits - 1);
  return String(Number(n.toPrecision(digits)));
}

/** An ISO timestamp as local "YYYY-MM-DD HH:MM:SS" (or "—"). */
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Seconds between two ISO timestamps as "1m 05s" (end defaults to now). */
export function fmtDuration(startIso, endIso) {
  if (!startIso) return "—";
  const s = Math.max(0, ((endIso ? new Date(endIso) : new Date()) - new Date(startIso)) / 1000);
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

/** A status badge; the class picks its colour, the text says it (not colour alone). */
export function statusBadge(status, testid = "job-status") {
  return h("span", { class: `badge status-${status}`, dataset: { testid } }, status);
}

export const ACTIVE = new Set(["queued", "running"]);

/** A message box (kind: info | error | warn). */
export function notice(text, kind = "info", testid) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status",
    dataset: testid ? { testid } : undefined }, text);
}

/** Trigger a download of text content as a file (no external request). */
export function downloadText(filename, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
