// Form inputs generated from GET /v1/catalog parameter descriptions
// ({name, type, default, choices, minimum, maximum, exclusive_*, description}), and the
// dotted-path helpers the spec editor uses. Every input carries data-field="<dotted path>"
// so a 422's error.fields[].field can be shown at the input it names.

import { h, uid, fmtNum } from "./dom.js";

export function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
}

/** Set (or with `undefined`, delete) a dotted path, creating objects on the way. */
export function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (o[k] === null || typeof o[k] !== "object") o[k] = {};
    o = o[k];
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete o[last];
  else o[last] = value;
}

const types = (p) => String(p.type || "").split(" | ");

/** Bounds and default in words, for the hint under an input. */
function boundsText(p) {
  const parts = [];
  if (p.minimum !== undefined) parts.push(`≥ ${fmtNum(p.minimum)}`);
  if (p.exclusive_minimum !== undefined) parts.push(`> ${fmtNum(p.exclusive_minimum)}`);
  if (p.maximum !== undefined) parts.push(`≤ ${fmtNum(p.maximum)}`);
  if (p.exclusive_maximum !== undefined) parts.push(`< ${fmtNum(p.exclusive_maximum)}`);
  if ("default" in p) parts.push(`default ${p.default === null ? "none" : JSON.stringify(p.default)}`);
  return parts.join(", ");
}

/** The text shown in a text input for a value. */
function show(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.join(", ");
  return String(v);
}

/** Parse what was typed for param p: numbers, "auto"-like choices, lists; "" → null or
 * (not nullable) undefined, i.e. "use the default". Returns {value} or {error}. */
function parse(p, text) {
  const t = types(p);
  const s = text.trim();
  if (s === "") return { value: t.includes("null") ? null : undefined };
  if ((p.choices || []).includes(s)) return { value: s };
  if (t.includes("array")) {
    const items = s.split(/[\s,]+/).filter(Boolean).map(Number);
    if (items.some((x) => !Number.isFinite(x))) return { error: "a list of numbers, e.g. 128, 64" };
    return { value: items };
  }
  if (t.includes("integer") || t.includes("number")) {
    const n = Number(s);
    if (!Number.isFinite(n)) {
      const extra = p.choices ? ` or ${p.choices.join(" / ")}` : "";
      return { error: `a number${extra}` };
    }
    if (t.includes("integer") && !t.includes("number") && !Number.isInteger(n)) return { error: "a whole number" };
    return { value: n };
  }
  return { value: s };
}

/**
 * One input for catalog param `p` at dotted `path`. value: the spec's value there
 * (undefined: not set, show the default). onChange(path, value) — value undefined means
 * "remove from the spec". Returns the .field element.
 */
export function paramInput(p, path, value, onChange) {
  const t = types(p);
  const id = uid("p");
  const shown = value === undefined ? p.default : value;
  const common = { id, name: path, dataset: { field: path }, title: p.description || "" };
  let control;
  const onlyChoices = p.choices && t.every((x) => x === "string" || x === "null");
  if (t.length === 1 && t[0] === "boolean") {
    control = h("input", { ...common, type: "checkbox", checked: !!shown,
      onchange: (e) => onChange(path, e.target.checked) });
  } else if (onlyChoices || (t.includes("boolean") && t.length <= 2)) {
    // choices (plus "none" where null is allowed), or a nullable boolean
    const opts = onlyChoices ? p.choices.map(String) : ["true", "false"];
    control = h("select", { ...common, onchange: (e) => {
      const v = e.target.value;
      onChange(path, v === "" ? null : t.includes("boolean") ? v === "true" : v);
    } },
    t.includes("null") ? h("option", { value: "" }, "none / default") : null,
    opts.map((o) => h("option", { value: o, selected: String(shown) === o }, o)));
    if (shown === null || shown === undefined) control.value = "";
  } else {
    const numeric = t.includes("number") || t.includes("integer");
    control = h("input", {
      ...common,
      type: "text",
      inputmode: numeric && !p.choices ? "decimal" : null,
      value: show(shown),
      placeholder: p.choices ? `number or ${p.choices.join("/")}` : t.includes("array") ? "e.g. 128, 64" : "",
      list: p.choices ? `${id}-choices` : null,
      onchange: (e) => {
        const r = parse(p, e.target.value);
        setError(wrap, r.error ? `Expected ${r.error}.` : null);
        if (!r.error) onChange(path, r.value);
      },
    });
  }
  const wrap = h(
    "div",
    { class: "field", dataset: { testid: `field-${path}` } },
    h("label", { for: id }, p.name),
    control,
    p.choices && control.tagName === "INPUT" && control.type === "text"
      ? h("datalist", { id: `${id}-choices` }, p.choices.map((c) => h("option", { value: c })))
      : null,
    h("small", { class: "hint" }, boundsText(p)),
  );
  return wrap;
}

/** Show (or with null, clear) an error message in a .field element. */
export function setError(fieldEl, message) {
  fieldEl.classList.toggle("invalid", !!message);
  const control = fieldEl.querySelector("[data-field]");
  let slot = fieldEl.querySelector("[data-testid=field-error]");
  if (!message) {
    if (slot) slot.remove();
    control?.removeAttribute("aria-invalid");
    return;
  }
  if (!slot) {
    slot = h("div", { class: "field-error", id: uid("err"), dataset: { testid: "field-error" } });
    fieldEl.append(slot);
  }
  slot.textContent = message;
  if (control) {
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", slot.id);
  }
}

/** A select of a union's members (dataset, model, optimizer, schedule), by tag key. */
export function choiceSelect(path, entries, key, current, onChange) {
  const id = uid("c");
  const select = h("select", { id, dataset: { field: path },
    onchange: (e) => onChange(e.target.value) },
  entries.map((e) => h("option", { value: e[key], selected: e[key] === current, title: e.description || "" }, e[key])));
  const entry = entries.find((e) => e[key] === current);
  return h("div", { class: "field", dataset: { testid: `field-${path}` } },
    h("label", { for: id }, key), select,
    entry && entry.description ? h("small", { class: "hint" }, entry.description) : null);
}
