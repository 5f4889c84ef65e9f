// The single page's shell: learns who is signed in, draws the nav, and routes the hash
// (#/jobs, #/jobs/<id>, #/projects, #/new?from=<id>, #/compare?ids=a,b, #/sweeps, #/sweeps/<id>, #/lab,
// #/playground, #/fleet, #/signin) to page modules, each `render(root, params, ctx)` → cleanup?.

import { api } from "./api.js";
import { h, clear, notice } from "./dom.js";

// route pattern → page module (under ./pages/). Lab pages are written by another team
// member and may be missing from a build: their import failing shows a notice, not a crash.
const ROUTES = [
  [/^$/, "jobs"],
  [/^jobs$/, "jobs"],
  [/^jobs\/([^/]+)$/, "job"],
  [/^new$/, "new"],
  [/^projects$/, "projects"],
  [/^compare$/, "compare"],
  [/^sweeps$/, "sweeps"],
  [/^sweeps\/([^/]+)$/, "sweep"],
  [/^lab$/, "lab"],
  [/^playground$/, "playground"],
  [/^fleet$/, "fleet"],
  [/^signin$/, "signin"],
];

const NAV = [
  ["#/jobs", "Jobs", ["jobs", "job"]],
  ["#/projects", "Projects", ["projects"]],
  ["#/new", "New job", ["new"]],
  ["#/compare", "Compare", ["compare"]],
  ["#/sweeps", "Sweeps", ["sweeps", "sweep"]],
  ["#/lab", "Lab", ["lab"]],
  ["#/playground", "Playground", ["playground"]],
  // Admins only: GET /v1/workers answers anyone else 403 (the page says so if opened).
  ["#/fleet", "Fleet", ["fleet"], "admin"],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const whoami = document.getElementById("whoami") || document.querySelector(".whoami");
const menuToggle = document.querySelector(".menu-toggle");

// user: {id, name, role} once known; authMode "session" (cookie) or "none" (the server
// has no session API: DESCENT_AUTH=none in development, every request is the local admin).
const state = { user: null, authMode: "session", cleanup: null, seq: 0 };

export function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

/** "#/jobs/abc?x=1&y=2" → {path: "jobs/abc", query: {x: "1", y: "2"}} */
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, qs = ""] = raw.split("?");
  const query = Object.fromEntries(new URLSearchParams(qs));
  return { path: path.replace(/\/+$/, ""), query };
}

function drawNav(page) {
  clear(
    nav,
    h(
      "ul",
      null,
      NAV.filter(([, , , role]) => !role || (state.user && state.user.role === role)).map(([href, text, pages]) =>
        h(
          "li",
          null,
          h("a", { href, "aria-current": pages.includes(page) ? "page" : null,
            dataset: { testid: `nav-${pages[0]}` } }, text),
        ),
      ),
    ),
  );
  if (!state.user) {
    clear(whoami);
    return;
  }
  clear(
    whoami,
    h("span", { class: "user", dataset: { testid: "user-name" } }, state.user.name,
      state.user.role ? h("small", null, ` (${state.user.role})`) : null),
    state.authMode === "session"
      ? h("button", { type: "button", class: "link", dataset: { testid: "signout" }, onclick: signOut },
          "Sign out")
      : null,
  );
}

async function signOut() {
  try {
    await api.del("/v1/session");
  } catch (e) {
    if (e.status !== 401) {
      alert(`Sign-out failed: ${e.message}`);
      return;
    }
  }
  setSignedOut();
  navigate("#/signin");
}

function setSignedOut() {
  state.user = null;
  api.setSession(null);
}

/** Called by the sign-in page with the POST /v1/session answer. */
function signedIn(session) {
  api.setSession(session);
  state.user = session.user;
  state.authMode = "session";
}

/** Learn the session at start: 200 → signed in; 401 → sign-in page; 404 → no session
 * API on this server (auth "none" in development): act as whoever /v1/me says. */
async function loadSession() {
  try {
    // Public: {user: null} when nobody is signed in (no 401, so no console error).
    const s = await api.probe("/v1/session");
    if (!s.user) {
      setSignedOut();
      return;
    }
    api.setSession(s);
    state.user = s.user;
    // No CSRF token: not a cookie session (DESCENT_AUTH=none): nothing to sign out of.
    state.authMode = s.csrf_token ? "session" : "none";
  } catch (e) {
    if (e.status === 404) {
      state.authMode = "none";
      try {
        state.user = await api.probe("/v1/me");
      } catch {
        state.user = null;
      }
    } else {
      setSignedOut();
    }
  }
}

async function route() {
  const seq = ++state.seq;
  if (state.cleanup) {
    try {
      state.cleanup();
    } catch (e) {
      console.warn("page cleanup failed", e);
    }
    state.cleanup = null;
  }
  const { path, query } = parseHash();
  let page = "jobs";
  const params = { ...query };
  for (const [re, name] of ROUTES) {
    const m = path.match(re);
    if (m) {
      page = name;
      if (m[1]) params.id = decodeURIComponent(m[1]);
      break;
    }
  }
  if (!ROUTES.some(([re]) => re.test(path))) page = "notfound";
  if (!state.user && page !== "signin") {
    navigate(`#/signin?next=${encodeURIComponent(window.location.hash || "#/jobs")}`);
    return;
  }
  document.body.dataset.page = page;
  document.title = "Descent"; // pages set their own once they know what they show
  drawNav(page);
  closeMenu();
  clear(main, h("p", { class: "loading" }, "Loading…"));
  if (page === "notfound") {
    clear(main, h("h1", null, "Not found"), h("p", null, h("a", { href: "#/jobs" }, "Back to jobs")));
    return;
  }
  let mod;
  try {
    mod = await import(`./pages/${page}.js`);
  } catch (e) {
    console.warn(`page ${page} could not be loaded`, e);
    if (seq === state.seq) {
      clear(main, h("h1", null, "Not available"),
        notice(`The ${page} page is not available in this build.`, "warn", "page-unavailable"));
    }
    return;
  }
  if (seq !== state.seq) return; // navigated away while loading
  const root = h("div", { class: `page page-${page}`, dataset: { testid: `page-${page}` } });
  clear(main, root);
  const ctx = { user: state.user, navigate, signedIn, authMode: state.authMode, reloadSession: loadSession };
  try {
    const cleanup = await mod.render(root, params, ctx);
    // After an in-app navigation, move focus to the new content (keyboard and screen
    // reader users start there), unless the page focused something itself.
    if (seq > 1 && seq === state.seq && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
    if (typeof cleanup === "function") {
      if (seq === state.seq) state.cleanup = cleanup;
      else cleanup(); // the user moved on while the page was rendering
    }
  } catch (e) {
    if (e && e.status === 401) return; // the 401 handler has already moved to #/signin
    console.warn(e);
    if (seq === state.seq) {
      root.append(notice(`Could not load this page: ${e && e.message ? e.message : e}`, "error", "page-error"));
    }
  }
}

function closeMenu() {
  document.body.classList.remove("menu-open");
  menuToggle?.setAttribute("aria-expanded", "false");
}

menuToggle?.addEventListener("click", () => {
  const open = document.body.classList.toggle("menu-open");
  menuToggle.setAttribute("aria-expanded", String(open));
});

api.onUnauthorized(() => {
  setSignedOut();
  const here = window.location.hash;
  if (parseHash().path !== "signin") navigate(`#/signin?next=${encodeURIComponent(here)}`);
});

window.addEventListener("hashchange", route);
loadSession().then(route);
