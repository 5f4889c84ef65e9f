// Sign-in: paste an API token once (POST /v1/session), or one click as the local admin
// when the server offers it (GET /v1/session/methods → local: true).

import { api } from "../api.js";
import { h, clear, field, notice } from "../dom.js";

/** Only hashes of this app are followed after sign-in (never an outside URL). */
function nextHash(params) {
  const next = params.next || "";
  return /^#\/[^/]/.test(next) && !next.startsWith("#/signin") ? next : "#/jobs";
}

export async function render(root, params, ctx) {
  document.title = "Sign in · Descent";
  const status = h("div", { class: "status-slot", "aria-live": "polite" });

  if (ctx.user) {
    clear(
      root,
      h("h1", null, "Signed in"),
      h("p", null, "You are signed in as ", h("strong", null, ctx.user.name), "."),
      h("p", null, h("a", { href: nextHash(params) }, "Continue")),
    );
    return;
  }

  let methods = { token: true, local: false };
  try {
    methods = await api.probe("/v1/session/methods");
  } catch (e) {
    if (e.status !== 404) status.append(notice(`Could not ask the server how to sign in: ${e.message}`, "warn"));
  }

  const done = (session) => {
    ctx.signedIn(session);
    ctx.navigate(nextHash(params));
  };

  const showError = (e) => {
    const text = e.status === 401 ? "That token was not accepted (unknown, revoked or expired)."
      : e.status === 403 ? `Refused: ${e.message}` : `Sign-in failed: ${e.message}`;
    clear(status, notice(text, "error", "signin-error"));
  };

  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "dsc_…",
    required: true,
    dataset: { testid: "token-input" },
  });
  const submit = h("button", { type: "submit", class: "primary", dataset: { testid: "signin-submit" } }, "Sign in");
  const form = h(
    "form",
    {
      class: "card signin",
      dataset: { testid: "signin-form" },
      onsubmit: async (ev) => {
        ev.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        submit.disabled = true;
        try {
          done(await api.post("/v1/session", { token }));
        } catch (e) {
          showError(e);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h2", null, "With an API token"),
    field("API token", input, {
      hint: "Create one with `descent token` or ask your admin. It is exchanged for a session cookie once; the page does not keep it.",
    }),
    h("div", { class: "actions" }, submit),
  );

  const local = methods.local
    ? h(
        "div",
        { class: "card signin" },
        h("h2", null, "On this machine"),
        h("p", null, "This server runs locally and offers its admin account without a token."),
        h(
          "button",
          {
            type: "button",
            class: "primary",
            dataset: { testid: "signin-local" },
            onclick: async (ev) => {
              const button = ev.currentTarget; // null once the handler awaits
              button.disabled = true;
              try {
                done(await api.post("/v1/session/local"));
              } catch (e) {
                showError(e);
                button.disabled = false;
              }
            },
          },
          "Sign in as local admin",
        ),
      )
    : null;

  clear(root, h("h1", null, "Sign in to Descent"), status, h("div", { class: "signin-grid" }, local, form));
  (local ? local.querySelector("button") : input).focus();
}
