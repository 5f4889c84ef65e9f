"""The browser tier works: Chromium reaches a real `descent up`, and the page guard catches
what it promises to (tested on a context of its own, so this test's page stays clean)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_support import DESKTOP, LiveServer, PageGuard, screenshot_saver


def test_the_page_reads_healthz_from_the_live_server(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    response = page.goto(f"{live_server.url}/healthz")
    assert response is not None and response.status == 200
    health = json.loads(page.locator("body").inner_text())
    assert health == {"status": "ok", "database": "ok", "broker": "ok"}
    # The API behind the page is the one the token opens: the data folder's local admin.
    me = page.request.get(f"{live_server.url}/v1/me", headers=live_server.headers)
    assert me.ok and me.json()["role"] == "admin"
    # The `screenshot` fixture's saver, pointed at folders of this test's own rather than
    # docs/screenshots/ (where `make screenshots` has it copy).
    save = screenshot_saver(tmp_path / "shots", tmp_path / "docs")
    (tmp_path / "shots").mkdir()
    shot = save(page, "healthz")
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "docs" / "healthz.png").read_bytes() == shot.read_bytes()
    with pytest.raises(ValueError, match="lowercase"):
        save(page, "../escape")


def test_the_guard_reports_and_blocks_external_requests_console_errors_and_throws(
    browser: Any,
) -> None:
    guard = PageGuard.for_netlocs(["127.0.0.1:9"])
    context = browser.new_context(viewport=DESKTOP)
    try:
        guard.attach(context)
        guard.allow_console("expected 401")
        page = context.new_page()
        page.set_content(
            '<img src="https://example.com/x.png">'
            "<script>console.error('drawn wrong'); console.error('expected 401');"
            " setTimeout(() => { throw new Error('boom') }, 0)</script>"
        )
        page.wait_for_function("document.images[0].complete")  # aborted, so settled
        page.evaluate("() => new Promise(r => setTimeout(r, 50))")  # the throw has landed
        assert not page.evaluate("document.images[0].naturalWidth")  # never loaded
    finally:
        context.close()
    assert guard.external_requests == ["GET https://example.com/x.png"]
    assert guard.console_errors == ["drawn wrong"]
    assert any("boom" in e for e in guard.page_errors)
    problems = guard.problems()
    assert len(problems) == 3
    assert "request beyond the server under test (aborted): GET https://example.com/x.png" in (
        problems
    )
    # The same page within the server: nothing to report.
    assert not guard.is_external("http://127.0.0.1:9/v1/jobs")
    assert not guard.is_external("data:image/png;base64,AAAA")
    assert guard.is_external("http://127.0.0.1:10/")
