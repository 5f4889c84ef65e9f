"""The dashboard in a real headless Chromium against a live `descent up` with its worker:
sign in, submit a job from the form and watch its epochs arrive, cancel from the live job
list, follow a running sweep's leaderboard, the playground, the offline API docs, a phone's
width. Every test fails on a console error or a request to any other host (the `page`
fixture's guard); the screenshots in docs/screenshots/ are taken here
(`make screenshots`)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from browser_support import LiveServer, PageGuard

#: A job that runs long enough to be watched: digits, many epochs; cancelled once seen.
LONG_JOB = {"dataset": "digits", "epochs": "300"}


def sign_in(page: Any, server: LiveServer) -> None:
    """Sign the page's context in as the server's local admin, through the API: the form
    itself is exercised by the first test."""
    r = page.request.post(f"{server.url}/v1/session", data={"token": server.token})
    assert r.status == 201, r.text()


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def points(page: Any, selector: str = "[data-testid=chart]") -> int:
    return int(page.locator(selector).first.get_attribute("data-points") or 0)


def wait_idle(server: LiveServer) -> None:
    """Wait until the server's one worker has nothing queued or running (tests share it)."""
    with api(server) as client:

        def idle() -> bool:
            page = client.get("/v1/jobs", params={"status": "queued,running"}).json()
            return page["total"] == 0

        deadline = time.monotonic() + 60
        while not idle():
            assert time.monotonic() < deadline, "the worker did not become idle"
            time.sleep(0.2)


def test_sign_in_submit_from_the_form_watch_epochs_live_and_cancel(
    page: Any, live_server: LiveServer, screenshot: Any, page_guard: PageGuard
) -> None:
    url = live_server.url
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{url}/")
    # Signed out: the sign-in page; paste the token once.
    page.get_by_test_id("token-input").fill(live_server.token)
    page.get_by_test_id("signin-submit").click()
    page.get_by_test_id("user-name").wait_for()
    assert "admin" in page.get_by_test_id("user-name").inner_text()
    cookie = next(c for c in page.context.cookies() if c["name"] == "descent_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert live_server.token not in cookie["value"]
    # The page's script cannot read the cookie, and no URL it loaded carries the token.
    assert "descent_session" not in page.evaluate("document.cookie")

    # A cookie-authenticated write without the CSRF proof is refused (the browser logs
    # the 403 it is made to provoke here).
    page_guard.allow_console(r"status of 403 \(Forbidden\)$")
    forged = page.evaluate(
        """async () => {
            const r = await fetch('/v1/jobs', {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: '{"name": "forged"}'});
            return [r.status, (await r.json()).error.code];
        }"""
    )
    assert forged == [403, "csrf"]

    # New job, from the form generated from the catalog.
    page.goto(f"{url}/#/new")
    page.get_by_test_id("spec-form").wait_for()
    page.locator('select[data-field="dataset.name"]').select_option(LONG_JOB["dataset"])
    epochs = page.locator('[data-field="training.epochs"]')
    epochs.fill(LONG_JOB["epochs"])
    epochs.press("Tab")  # the form takes a value on change
    name = page.locator('[data-field="name"]')
    name.fill("watched [live] <b>job</b>")  # user text is shown as text, never as markup
    name.press("Tab")
    editor = page.get_by_test_id("spec-editor")
    assert '"epochs": 300' in editor.input_value() or "epochs: 300" in editor.input_value()
    page.get_by_test_id("submit").click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    assert page.get_by_test_id("job-name").inner_text() == "watched [live] <b>job</b>"

    # Epochs arrive on the chart while we watch, without a reload.
    page.evaluate("window.__same_document = true")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=chart]')?.dataset.points !== undefined"
    )
    first = points(page)
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=chart]').dataset.points) >= n",
        arg=first + 5,
        timeout=60_000,
    )
    seen = points(page)
    count = page.get_by_test_id("epoch-count").inner_text()
    assert re.fullmatch(r"\d+/300", count) and int(count.split("/")[0]) >= seen >= first + 5
    assert page.evaluate("window.__same_document") is True
    screenshot(page, "job-live")

    # A second job waits behind it (one worker); cancel it from the live job list.
    with api(live_server) as client:
        r = client.post("/v1/jobs", json={"name": "second", "dataset": {"name": "iris"}})
        assert r.status_code == 202
        second = r.json()["id"]
    page.goto(f"{url}/#/jobs")
    row = page.locator(f'[data-testid=job-row][data-job-id="{second}"]')
    row.wait_for()
    assert row.get_by_test_id("job-status").inner_text() == "queued"
    running = page.locator(f'[data-testid=job-row][data-job-id="{job_id}"]')
    assert running.get_by_test_id("job-status").inner_text() == "running"
    screenshot(page, "jobs")
    row.get_by_test_id("cancel").click()
    # The row changes when the stream says so (no reload).
    page.evaluate("window.__same_document = true")
    row.get_by_test_id("job-status").filter(has_text="cancelled").wait_for()
    # The running job's epochs move on in the list, too.
    before = int(running.get_by_test_id("epoch-count").inner_text().split("/")[0])
    page.wait_for_function(
        """([id, n]) => Number(document.querySelector(
            `[data-testid=job-row][data-job-id="${id}"] [data-testid=epoch-count]`
        ).textContent.split('/')[0]) > n""",
        arg=[job_id, before],
    )
    assert page.evaluate("window.__same_document") is True

    # Cancel the watched job from its page: it ends as cancelled, and the page says so.
    page.goto(f"{url}/#/jobs/{job_id}")
    page.get_by_test_id("cancel").click()
    page.get_by_test_id("job-status").filter(has_text="cancelled").wait_for(timeout=30_000)
    with api(live_server) as client:
        assert client.get(f"/v1/jobs/{second}").json()["status"] == "cancelled"
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    # The token went in one request body, never in a URL (streams and downloads included).
    assert len(requested) > 20 and not [u for u in requested if live_server.token in u]
    # Nor in any line the server or its worker logged (uvicorn logs every request line).
    assert "POST /v1/session" in live_server.output()
    assert live_server.token not in live_server.output()


def test_a_running_sweeps_leaderboard_changes_while_it_is_watched(
    page: Any, live_server: LiveServer, screenshot: Any
) -> None:
    wait_idle(live_server)
    sweep = {
        "name": "watched sweep",
        "base": {
            "dataset": {"name": "digits"},
            "model": {"kind": "mlp", "hidden": [32]},
            "training": {"epochs": 6, "batch_size": 64},
        },
        "space": {"optimizer.lr": {"loguniform": [0.001, 0.3]}},
        "sampler": {"name": "random", "seed": 3},
        "objective": {"metric": "val_accuracy", "direction": "max"},
        "max_trials": 12,
        "parallelism": 1,
    }
    with api(live_server) as client:
        r = client.post("/v1/sweeps", json=sweep)
        assert r.status_code == 201, r.text
        sweep_id = r.json()["id"]
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/#/sweeps/{sweep_id}")
    board = page.get_by_test_id("leaderboard")
    board.wait_for()
    assert page.get_by_test_id("sweep-status").inner_text() == "running"

    def done() -> int:
        return page.locator(
            "[data-testid=leaderboard-row][data-state=complete],"
            "[data-testid=leaderboard-row][data-state=pruned]"
        ).count()

    start = done()
    page.evaluate("window.__same_document = true")
    page.wait_for_function(
        """n => document.querySelectorAll(
            '[data-testid=leaderboard-row][data-state=complete],' +
            '[data-testid=leaderboard-row][data-state=pruned]').length >= n""",
        arg=start + 2,
        timeout=60_000,
    )
    assert page.evaluate("window.__same_document") is True
    assert done() >= start + 2
    page.get_by_test_id("parallel-coords").wait_for()
    screenshot(page, "sweep")
    # Cancel it (two clicks: the button, then the confirmation) to free the worker.
    page.get_by_test_id("cancel-sweep").click()
    page.get_by_test_id("cancel-confirm").click()
    page.get_by_test_id("sweep-status").filter(has_text="cancelled").wait_for(timeout=30_000)


def test_the_playground_draws_and_redraws_trajectories(
    page: Any, live_server: LiveServer, screenshot: Any
) -> None:
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/#/playground")
    page.get_by_test_id("playground-form").wait_for()
    page.get_by_test_id("playground-chart").wait_for()
    items = page.get_by_test_id("trajectory-legend-item")
    items.first.wait_for()
    runs = items.count()
    assert runs >= 1
    screenshot(page, "playground")
    # Another optimizer: the trajectories are computed and drawn again, one more.
    page.get_by_role("button", name="+ add optimizer").click()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=trajectory-legend-item]').length === n",
        arg=runs + 1,
    )


def test_the_api_docs_render_offline(
    page: Any, live_server: LiveServer, page_guard: PageGuard
) -> None:
    page.goto(f"{live_server.url}/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    assert page.locator(".swagger-ui .opblock").count() > 20
    # ReDoc 2 shows Redocly's logo from their CDN: the page's Content-Security-Policy has
    # the browser refuse it (the guard would report a request that left).
    page_guard.allow_console(r"^Loading the image 'https://cdn\.redoc\.ly/.*has been blocked")
    failed: dict[str, str | None] = {}
    page.on("requestfailed", lambda r: failed.__setitem__(r.url, r.failure))
    page.goto(f"{live_server.url}/redoc")
    page.get_by_text("Follow all your jobs live", exact=False).first.wait_for()
    assert page.locator("h1").first.inner_text().startswith("Descent")
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    page.wait_for_function("() => !document.querySelector('img[alt=\"redocly logo\"]')")
    # Refused by the browser itself, before any connection: not a request that left.
    assert failed.get(logo) == "csp", failed  # Chromium: blocked by the page's CSP
    page_guard.external_requests.remove(f"GET {logo}")


def test_the_jobs_page_fits_a_phone(phone_page: Any, live_server: LiveServer) -> None:
    sign_in(phone_page, live_server)
    phone_page.goto(f"{live_server.url}/#/jobs")
    phone_page.get_by_test_id("jobs-table").wait_for()
    # Nothing but the table's own scroller is wider than the screen.
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    phone_page.get_by_test_id("menu-toggle").click()
    phone_page.get_by_test_id("nav-playground").click()
    phone_page.get_by_test_id("playground-form").wait_for()


def test_one_click_local_sign_in_and_sign_out(page: Any, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/")
    page.get_by_test_id("signin-local").click()
    page.get_by_test_id("user-name").wait_for()
    # The jobs page has loaded what it asks for (its list and the projects): a request
    # still in flight at the sign-out would be answered 401, which the page guard counts.
    page.locator("[data-testid=filter-project][data-loaded]").wait_for(state="attached")
    page.get_by_test_id("page-info").wait_for()
    page.get_by_test_id("signout").click()
    page.get_by_test_id("signin-form").wait_for()
    assert not [c for c in page.context.cookies() if c["name"] == "descent_session"]
    who = page.evaluate("fetch('/v1/session').then(r => r.json())")
    assert who["user"] is None


def test_a_refused_spec_shows_the_servers_error_at_the_field_it_names(
    page: Any, live_server: LiveServer, page_guard: PageGuard
) -> None:
    page_guard.allow_console(r"status of 422 \(Unprocessable")  # the refusal provoked here
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/#/new")
    page.get_by_test_id("spec-form").wait_for()
    lr = page.locator('[data-field="optimizer.lr"]')
    lr.fill("-1")  # a number, so the form takes it; the server's bounds refuse it
    lr.press("Tab")
    page.get_by_test_id("submit").click()
    error = page.get_by_test_id("field-optimizer.lr").get_by_test_id("field-error")
    error.wait_for()
    assert "lr" in error.inner_text() or "greater" in error.inner_text()
    assert lr.get_attribute("aria-invalid") == "true"
    assert "#/new" in page.url  # nothing was submitted


def test_compare_overlays_jobs_labelled_by_what_differs(page: Any, live_server: LiveServer) -> None:
    wait_idle(live_server)
    ids = []
    with api(live_server) as client:
        for lr in (0.01, 0.1):
            spec = {"name": f"cmp {lr}", "optimizer": {"name": "adam", "lr": lr}}
            spec["training"] = {"epochs": 3}
            r = client.post("/v1/jobs", json=spec)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
    wait_idle(live_server)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/#/compare?ids={','.join(ids)}")
    labels = page.get_by_test_id("compare-label")
    labels.nth(1).wait_for()
    assert sorted(labels.all_inner_texts()) == ["optimizer.lr=0.01", "optimizer.lr=0.1"]
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart]')?.dataset.points) === 3"
    )
