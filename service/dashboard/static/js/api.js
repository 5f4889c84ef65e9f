// The one way the dashboard talks to the server: same-origin fetch with the session
// cookie, the CSRF header on writes, and one error type for every non-2xx answer.

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** A non-2xx answer, read from the API's `{"error": {status, code, message, fields}}`. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = err.code || "http_error";
    this.fields = Array.isArray(err.fields) ? err.fields : [];
  }
}

// The current session: {user, csrf_token, expires_at} or null. app.js fills it in.
let session = null;
// Called on any 401 (app.js sends the user to #/signin); never for the session probe itself.
let unauthorizedHandler = () => {};

/** Build a same-origin URL; query values that are null/undefined/"" are left out. */
function url(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === "") continue;
    u.searchParams.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  // Relative to the origin: the page works wherever the API serves it.
  return u.pathname + u.search;
}

async function request(method, path, { query, body, raw, contentType, quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // A raw body (CSV text, a FormData with a file) goes as it is; FormData sets its own type.
  else if (raw !== undefined && contentType) headers["Content-Type"] = contentType;
  if (WRITES.has(method) && session && session.csrf_token) {
    headers["X-CSRF-Token"] = session.csrf_token;
  }
  let resp;
  try {
    resp = await fetch(url(path, query), {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? raw : JSON.stringify(body),
    });
  } catch (e) {
    // Network failure: same shape as an API error so callers have one catch path.
    throw Object.assign(new ApiError(0, { error: { message: `network error: ${e.message}` } }), {
      code: "network",
    });
  }
  const type = resp.headers.get("content-type") || "";
  let data = null;
  if (resp.status !== 204) {
    data = type.includes("json") ? await resp.json().catch(() => null) : await resp.text();
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, typeof data === "object" ? data : null);
    if (resp.status === 401 && !quiet401) unauthorizedHandler(err);
    throw err;
  }
  return data;
}

/**
 * Follow a server-sent event stream. EventSource sends the cookie (same origin) and
 * reconnects by itself with Last-Event-ID after a drop. handlers: onEvent(name, data, id),
 * onOpen(), onError({closed, event}) — closed: the browser gave up (e.g. a 401/404 answer),
 * it will not reconnect. Returns close().
 */
function stream(path, { events = [], onEvent, onOpen, onError, query } = {}) {
  const es = new EventSource(url(path, query), { withCredentials: true });
  let closed = false;
  const dispatch = (name) => (ev) => {
    let data = ev.data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      /* not JSON: pass the text through */
    }
    if (onEvent) onEvent(name, data, ev.lastEventId);
  };
  for (const name of events) es.addEventListener(name, dispatch(name));
  es.onmessage = dispatch("message");
  es.onopen = () => onOpen && onOpen();
  es.onerror = (event) => {
    const gaveUp = es.readyState === EventSource.CLOSED;
    if (gaveUp && !closed) {
      // EventSource hides the status of a refused stream: ask a cheap route whether the
      // session has gone, so a 401 still leads to the sign-in page.
      request("GET", "/v1/me").catch(() => {});
    }
    if (onError && !closed) onError({ closed: gaveUp, event });
  };
  return () => {
    closed = true;
    es.close();
  };
}

export const api = {
  get: (path, query) => request("GET", path, { query }),
  post: (path, body) => request("POST", path, { body }),
  put: (path, body) => request("PUT", path, { body }),
  patch: (path, body) => request("PATCH", path, { body }),
  /** POST a body that is not JSON: text with its content type, or a FormData (multipart). */
  postRaw: (path, raw, contentType, query) => request("POST", path, { raw, contentType, query }),
  del: (path) => request("DELETE", path),
  /** GET without triggering the sign-in redirect on 401 (the app's session probe). */
  probe: (path) => request("GET", path, { quiet401: true }),
  stream,
  url,
  get session() {
    return session;
  },
  setSession(s) {
    session = s;
  },
  onUnauthorized(fn) {
    unauthorizedHandler = fn;
  },
};

export default api;
