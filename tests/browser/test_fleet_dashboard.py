"""The fleet page (#/fleet) in a real Chromium against the shared live `descent up`: worker
rows written into its database as workers write them — one running the admin's job, one
running another user's, one gone silent (lost) — shown with their state, device and jobs,
re-read without a reload; the queue table; and a user who is not an admin sees no link and
gets the API's refusal."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
from browser_support import LiveServer, PageGuard
from fleet_rows import add_worker
from support import bearer, make_user_at

from service.db import utcnow

A10 = [{"name": "NVIDIA A10", "kind": "cuda", "memory_bytes": 24 << 30}]


def database_url(server: LiveServer) -> str:
    return f"sqlite:///{(server.data_dir / 'descent.sqlite').as_posix()}"


def sign_in(page: Any, server: LiveServer, token: str) -> None:
    r = page.request.post(f"{server.url}/v1/session", data={"token": token})
    assert r.status == 201, r.text()


def submit(server: LiveServer, token: str, name: str) -> dict[str, Any]:
    spec = {"name": name, "dataset": {"name": "iris"}, "model": {"kind": "linear"}}
    spec["training"] = {"epochs": 2}
    r = httpx.post(f"{server.url}/v1/jobs", json=spec, headers=bearer(token), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def test_the_fleet_page_shows_workers_states_and_jobs_and_refreshes(
    page: Any, live_server: LiveServer, screenshot: Any
) -> None:
    url = database_url(live_server)
    tag = uuid.uuid4().hex[:6]
    other = make_user_at(url, f"fleet-{tag}")
    mine = submit(live_server, live_server.token, f"fleet mine {tag}")
    theirs = submit(live_server, other, f"fleet theirs {tag}")
    gpu, cpu, lost = f"gpu-{tag}:4101", f"cpu-{tag}:4102", f"gone-{tag}:4103"
    # A queue of their own: the server's real worker and its queue are left as they are.
    queue = f"fleet-{tag}"
    add_worker(
        url,
        gpu,
        queue=queue,
        devices=A10,
        cuda_version="12.4",
        torch_threads=6,
        concurrency=2,
        running=[mine["id"], theirs["id"]],
    )
    add_worker(url, cpu, queue=queue, torch_threads=2, started_at=utcnow() - timedelta(minutes=5))
    add_worker(
        url,
        lost,
        queue=queue,
        started_at=utcnow() - timedelta(hours=3),
        heartbeat_at=utcnow() - timedelta(minutes=10),
    )

    sign_in(page, live_server, live_server.token)
    page.goto(f"{live_server.url}/#/jobs")
    page.get_by_test_id("nav-fleet").click()
    row = page.locator(f'[data-testid=worker-row][data-worker-id="{gpu}"]')
    row.wait_for()
    assert row.get_by_test_id("worker-state").inner_text() == "ready"
    assert row.get_by_test_id("worker-device").inner_text() == "cuda NVIDIA A10 (24.0 GiB)"
    assert row.get_by_test_id("worker-threads").inner_text() == "6"
    # The admin's own job links to its page; another user's is named, with whose it is.
    jobs = row.get_by_test_id("worker-job")
    assert jobs.count() == 2
    link = row.locator(f'a[href="#/jobs/{mine["id"]}"]')
    assert link.inner_text() == f"fleet mine {tag}"
    assert f"fleet-{tag}'s" in row.get_by_test_id("worker-running").inner_text()
    assert row.locator(f'a[href="#/jobs/{theirs["id"]}"]').count() == 0

    gone = page.locator(f'[data-testid=worker-row][data-worker-id="{lost}"]')
    badge = gone.get_by_test_id("worker-state")
    assert badge.inner_text() == "lost"
    # Lost is red: white on the danger colour, not a colour a live worker has.
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(180, 35, 24)"
    assert re.fullmatch(r"\d+m \d\ds ago", gone.get_by_test_id("worker-heartbeat").inner_text())
    # Their queue: nothing waits in it; the two live workers consume it, the lost one not.
    theirs_row = page.locator(f'[data-testid=queue-row][data-queue="{queue}"]')
    assert theirs_row.get_by_test_id("queue-depth").inner_text() == "0"
    assert theirs_row.get_by_test_id("queue-queued").inner_text() == "0"
    assert theirs_row.get_by_test_id("queue-workers").inner_text() == "2"
    # The server's own queue comes first, its depth a number: the broker answered.
    own = page.get_by_test_id("queue-row").first
    assert re.fullmatch(r"\d+", own.get_by_test_id("queue-depth").inner_text())
    screenshot(page, "fleet")

    # The lost worker comes back (a heartbeat): the page shows it without a reload.
    page.evaluate("window.__same_document = true")
    add_worker(url, lost, heartbeat_at=utcnow())
    page.wait_for_function(
        'id => document.querySelector(`[data-worker-id="${id}"] [data-testid=worker-state]`)'
        "?.textContent === 'ready'",
        arg=lost,
        timeout=15_000,
    )
    assert page.evaluate("window.__same_document") is True
    link.click()
    page.wait_for_url(re.compile(rf"#/jobs/{mine['id']}$"))
    page.get_by_test_id("job-name").wait_for()


def test_a_user_who_is_not_an_admin_has_no_fleet_link_and_is_refused(
    page: Any, live_server: LiveServer, page_guard: PageGuard
) -> None:
    page_guard.allow_console(r"status of 403 \(Forbidden\)$")  # the refusal provoked here
    token = make_user_at(database_url(live_server), f"viewer-{uuid.uuid4().hex[:6]}")
    sign_in(page, live_server, token)
    page.goto(f"{live_server.url}/#/jobs")
    page.get_by_test_id("nav-jobs").wait_for()
    assert page.get_by_test_id("nav-fleet").count() == 0
    page.goto(f"{live_server.url}/#/fleet")
    error = page.get_by_test_id("fleet-error")
    error.wait_for()
    assert "admin" in error.inner_text()
    assert page.get_by_test_id("worker-row").count() == 0
