"""The browser tier's fixtures: a real ``descent up`` and Debian's headless Chromium.

Every test in this folder is marked ``browser`` (tests/conftest.py), and ``server`` too
when it uses a live server. The parts are real: the embedded default as a user starts it
(migrations, uvicorn, one supervised Celery worker, SQLite and the SQL broker) and a real
Chromium driven by Playwright's sync API.

- ``live_server`` (session): one ``descent up`` per test process, shared by the browser
  modules that process runs, so make the data you assert on (unique names) and never
  assume an empty server. ``module_live_server`` is a module's own, for a test that needs
  one nobody else has touched. Both yield a :class:`browser_support.LiveServer`: ``url``
  (``http://127.0.0.1:PORT``), ``token`` (the local admin's, from the data folder's
  ``token`` file), ``headers`` (its ``Authorization``), ``data_dir``, ``output()``.
- ``browser`` (session): Chromium, launched from ``/usr/bin/chromium``; a missing one fails
  the test with the command that installs it.
- ``page`` (1280×800) and ``phone_page`` (390×844, touch): a fresh context and page each,
  watched by ``page_guard``, which fails the test at teardown if a console error, an
  uncaught page error or a request beyond the live server happened (such requests are
  aborted). ``page_guard.allow_console(regex)`` excuses an error the test provokes.
  ``new_page(viewport=…, **context_options)`` opens further guarded pages.
- ``screenshot(page, name, **options) -> Path``: a PNG in the test's tmp folder; with
  ``DESCENT_SCREENSHOTS=1`` (``make screenshots``) also copied to docs/screenshots/NAME.png,
  where README and docs/ take them from.

A failing test that used a live server gets the server's log tail in its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    DESKTOP,
    PHONE,
    LiveServer,
    PageGuard,
    launch_chromium,
    screenshot_saver,
    start_live_server,
)
from support import SCREENSHOTS_DIR, require_mark, screenshots_wanted

LIVE_SERVERS = ("live_server", "module_live_server")
#: The live server a test's page was guarded for (taken with getfixturevalue, which leaves
#: it out of ``item.funcargs``).
_GUARDED_SERVER = pytest.StashKey[LiveServer]()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``descent up`` shared by this test process's browser tests."""
    server = start_live_server(tmp_path_factory.mktemp("live-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``descent up`` of this module's own: a fresh database nobody else has written to."""
    server = start_live_server(tmp_path_factory.mktemp("module-live-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        servers = {id(s): s for s in (getattr(item, "funcargs", {}).get(n) for n in LIVE_SERVERS)}
        if _GUARDED_SERVER in item.stash:
            servers[id(item.stash[_GUARDED_SERVER])] = item.stash[_GUARDED_SERVER]
        for server in servers.values():
            if isinstance(server, LiveServer):
                report.sections.append((f"descent up log ({server.url}, tail)", server.tail()))
    return report


# Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop marked as
# running in this thread while it is started, and the tests that the same xdist process
# runs after a browser module call asyncio.run / anyio.run. A Chromium per module is cheap.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - environment problem, reported clearly
        pytest.fail(
            "the browser tests need Playwright's Python package: "
            "pip install -e '.[dev]' (never `playwright install`: Debian's chromium is used)",
            pytrace=False,
        )
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """Debian's Chromium, headless, for the test module."""
    require_mark("browser", "drives a headless Chromium")
    browser = launch_chromium(playwright)
    try:
        yield browser
    finally:
        browser.close()


def _live_server_of(request: pytest.FixtureRequest) -> LiveServer:
    """The live server the test uses: its own module's if it asked for that one."""
    name = "module_live_server" if "module_live_server" in request.fixturenames else "live_server"
    server: LiveServer = request.getfixturevalue(name)
    request.node.stash[_GUARDED_SERVER] = server
    return server


@pytest.fixture
def page_guard(request: pytest.FixtureRequest) -> Iterator[PageGuard]:
    """Fails the test at teardown on a console error, an uncaught page error or a request
    beyond the live server (see :class:`browser_support.PageGuard`)."""
    guard = PageGuard.for_netlocs([_live_server_of(request).netloc])
    yield guard
    guard.check()


@pytest.fixture
def new_page(browser: Any, page_guard: PageGuard) -> Iterator[Callable[..., Any]]:
    """``new_page(viewport=DESKTOP, **context_options)``: a page in a fresh context, watched
    by ``page_guard``; its context is closed before the guard checks."""
    contexts: list[Any] = []

    def open_page(*, viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
        context = browser.new_context(viewport=viewport, **options)
        contexts.append(context)
        page_guard.attach(context)
        context.set_default_timeout(15_000)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """A desktop page (1280×800)."""
    return new_page()


@pytest.fixture
def phone_page(new_page: Callable[..., Any]) -> Any:
    """A phone's page (390×844, touch, 3× pixels like the phone)."""
    return new_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=3)


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[..., Path]:
    """``screenshot(page, name, **options) -> Path`` (see the module's docstring)."""
    return screenshot_saver(tmp_path, SCREENSHOTS_DIR if screenshots_wanted() else None)
