"""A dashboard served from another origin, in the browser: a page of an origin listed in
DESCENT_CORS_ORIGINS (the live server lists http://localhost:8899) calls the API with a
bearer token and reads a job's event stream with fetch(); a page of an unlisted origin
is refused by the browser. Both pages are served by the browser itself (Playwright's
routing): no server is behind those names, and nothing leaves the machine. A page the
browser serves has no address, so Chromium would count it as a public one reaching a
loopback address and ask the user (Local Network Access); the context is granted that
permission, as a page really served from this machine would not need it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser_support import DESKTOP, LiveServer, PageGuard

READ_STREAM = """async ([api, token, jobId]) => {
    const headers = {Authorization: `Bearer ${token}`};
    const jobs = await (await fetch(`${api}/v1/jobs?limit=1`, {headers})).json();
    const res = await fetch(`${api}/v1/jobs/${jobId}/events`, {headers});
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("event: end")) {
        const {value, done} = await reader.read();
        if (done) break;
        text += value;
    }
    return {total: jobs.total, status: res.status, text};
}"""

TRY_FETCH = """async ([api, token]) => {
    try {
        const r = await fetch(`${api}/v1/jobs`, {headers: {Authorization: `Bearer ${token}`}});
        return `read ${r.status}`;
    } catch (e) {
        return `refused: ${e.name}`;
    }
}"""


@pytest.fixture
def elsewhere(browser: Any, live_server: LiveServer) -> Iterator[tuple[Any, PageGuard]]:
    """A context whose pages at http://localhost:8899 and http://localhost:8898 are served
    by the browser; every other host but the live server is refused and reported."""
    guard = PageGuard.for_netlocs([live_server.netloc, "localhost:8899", "localhost:8898"])
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["local-network-access"])
    guard.attach(context)
    page_html = "<!doctype html><title>a dashboard elsewhere</title><p>elsewhere</p>"
    for origin in ("http://localhost:8899", "http://localhost:8898"):
        context.route(
            f"{origin}/**",
            lambda route: route.fulfill(status=200, content_type="text/html", body=page_html),
        )
    try:
        yield context, guard
    finally:
        context.close()
    guard.check()


def finished_job(server: LiveServer) -> str:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
        r = client.post("/v1/jobs", json={"name": "cors", "training": {"epochs": 3}})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 90
        while client.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the job did not end"
            time.sleep(0.2)
    return job_id


def test_a_listed_origin_fetches_with_a_bearer_token_and_reads_a_stream(
    elsewhere: tuple[Any, PageGuard], live_server: LiveServer
) -> None:
    context, _ = elsewhere
    job_id = finished_job(live_server)
    page = context.new_page()
    page.goto("http://localhost:8899/")
    got = page.evaluate(READ_STREAM, [live_server.url, live_server.token, job_id])
    assert got["status"] == 200 and got["total"] >= 1
    assert "event: status" in got["text"] and "event: epoch" in got["text"]
    assert got["text"].rstrip().splitlines()[-1].startswith("data: ")
    assert "event: end" in got["text"]


def test_an_unlisted_origin_is_refused_by_the_browser(
    elsewhere: tuple[Any, PageGuard], live_server: LiveServer
) -> None:
    context, guard = elsewhere
    # The browser reports what it refused; that is what this test provokes.
    guard.allow_console(r"blocked by CORS policy")
    guard.allow_console(r"Failed to load resource: net::ERR_FAILED")
    page = context.new_page()
    said: list[str] = []
    page.on("console", lambda m: said.append(m.text))
    page.goto("http://localhost:8898/")
    assert page.evaluate(TRY_FETCH, [live_server.url, live_server.token]).startswith("refused")
    # Refused for want of the API's CORS answer (not for the address space: see above).
    assert any("No 'Access-Control-Allow-Origin' header" in m for m in said), said
    # The same call from the listed origin is read: the refusal is the origin's.
    page = context.new_page()
    page.goto("http://localhost:8899/")
    assert page.evaluate(TRY_FETCH, [live_server.url, live_server.token]) == "read 200"
