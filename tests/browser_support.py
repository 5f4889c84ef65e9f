"""The browser tier's parts (tests/browser/conftest.py makes fixtures of them): the
embedded default served as a user starts it, Debian's Chromium, and a guard that fails a
test whose page logs an error, throws, or reaches beyond the server under test.

Chromium is Debian's (``/usr/bin/chromium``, installed by scripts/ensure-chromium.sh, which
`make test` runs); Playwright only drives it. Playwright's own browser download is never
used: ``playwright install`` cannot reach its servers from CI's machines.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from faults import free_port
from support import COMMON_ENV, ROOT, require_mark, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Request, Route

#: Where the browser is; DESCENT_CHROMIUM overrides it (scripts/ensure-chromium.sh reads it too).
CHROMIUM = Path(os.environ.get("DESCENT_CHROMIUM", "/usr/bin/chromium"))
#: Headless as root, in a container, with nothing reaching out to Google's hosts: without
#: the background-networking flags Chromium calls home and gets refused.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
#: A phone held upright (an iPhone 12–15's CSS size).
PHONE = {"width": 390, "height": 844}

#: Short polls, so what a page waits for (a sweep's next trial, a stream's next epoch)
#: arrives in a fraction of a second rather than the production interval.
LIVE_SERVER_ENV = {
    **COMMON_ENV,
    "DESCENT_SWEEP_POLL_SECONDS": "0.2",
    "DESCENT_CANCEL_POLL_SECONDS": "0.2",
    "DESCENT_EVENTS_POLL_SECONDS": "0.1",
    # A page of this origin may call the API with a bearer token (tests/browser/test_cors.py
    # serves it from the browser itself: no server behind that name).
    "DESCENT_CORS_ORIGINS": "http://localhost:8899",
}


def launch_chromium(playwright: Any) -> Browser:
    """Debian's Chromium, headless; the test fails, with the fix, where it is missing."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need it. Run "
            "scripts/ensure-chromium.sh (`make test` does; as root, or a user with sudo), "
            "or `apt-get install chromium`. Never `playwright install`: its download is "
            "not reachable from CI.",
            pytrace=False,
        )
    # Playwright gives each launch a fresh profile (user-data-dir) of its own and removes it.
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


# -- the server -------------------------------------------------------------------------


@dataclass
class LiveServer:
    """``descent up`` (migrations, the API under uvicorn, one supervised worker, SQLite and
    the SQL broker) in its own data folder, on a free loopback port."""

    url: str
    token: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def netloc(self) -> str:
        """host:port, the only place a page under test may reach."""
        return urlsplit(self.url).netloc

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def wait_worker_ready(self, timeout: float = 90) -> None:
        """Until Celery says the worker is ready (jobs run before then too: they wait)."""
        try:
            wait_for(lambda: " ready." in self.output(), timeout, what="the worker to start")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- descent up log ---\n{self.tail()}") from None

    def worker_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"worker \d+ started \(pid (\d+)\)", self.output())]

    def stop(self) -> None:
        """SIGTERM, as a user's Ctrl-C or systemd, then SIGKILL to whatever is left (the
        workers' process groups included) a moment later: a worker whose pool is still
        importing torch takes its supervisor's full 10 s to stop warmly, which a throwaway
        data folder does not need. Once the SIGTERM has landed the supervisor starts no
        worker, so the log names every one there is to kill."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(2)
        for pid in [self.proc.pid, *self.worker_pids()]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.proc.wait()


def start_live_server(folder: Path, *, env: dict[str, str] | None = None) -> LiveServer:
    """Start ``descent up --workers 1`` with its data under ``folder/data`` and wait until
    /healthz answers ok and the local admin's token is written. ``env`` adds or overrides
    ``DESCENT_*`` settings. The caller stops it (:meth:`LiveServer.stop`)."""
    import httpx

    require_mark("server", "serves the API with uvicorn (`descent up`)")
    require_mark("browser", "starts `descent up` with its worker for the browser tier")
    port = free_port()
    data_dir = folder / "data"
    log_path = folder / "descent-up.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    process_env = {**base, **LIVE_SERVER_ENV, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "up", "--host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(data_dir), "--workers", "1"],
            cwd=ROOT, env=process_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so teardown takes uvicorn with it
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    server = LiveServer(url, "", data_dir, log_path, proc)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"descent up exited with {proc.returncode}")
        try:
            r = httpx.get(f"{url}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json().get("status") == "ok"

    try:
        wait_for(healthy, 90, interval=0.1, what="descent up to answer /healthz")
        token_file = data_dir / "token"
        server.token = wait_for(
            lambda: token_file.is_file() and token_file.read_text().strip(),
            10,
            what=f"the local admin's token in {token_file}",
        )
    except AssertionError as exc:
        server.stop()
        raise AssertionError(f"{exc}\n--- descent up log ---\n{server.tail()}") from None
    return server


# -- the guard --------------------------------------------------------------------------

#: Schemes that never leave the browser.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome-error", "javascript"})


@dataclass
class PageGuard:
    """Watches browser contexts: every console message of type error, every uncaught page
    error (``pageerror``/``weberror``) and every request to a host:port other than
    ``allowed``. Requests elsewhere are aborted before they leave, so a test never waits
    on the network. :meth:`problems` lists what happened; the ``page`` fixture fails the
    test with it at teardown. A test that provokes an error on purpose says so with
    :meth:`allow_console` (a regex searched in the message)."""

    allowed: frozenset[str]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    _allowed_console: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def for_netlocs(cls, netlocs: Iterable[str]) -> PageGuard:
        return cls(frozenset(netlocs))

    def is_external(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in LOCAL_SCHEMES:
            return False
        return parts.netloc not in self.allowed

    def allow_console(self, pattern: str) -> None:
        self._allowed_console.append(re.compile(pattern))

    def attach(self, context: BrowserContext) -> None:
        """Watch ``context`` and every page it opens (popups included)."""
        context.route(self.is_external, self._abort)
        context.on("request", self._on_request)
        context.on("console", self._on_console)
        context.on("weberror", lambda e: self.page_errors.append(_describe_error(e.error)))

    def _abort(self, route: Route) -> None:
        route.abort("blockedbyclient")

    def _on_request(self, request: Request) -> None:
        if self.is_external(request.url):
            self.external_requests.append(f"{request.method} {request.url}")

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        # The browser's own note on a request the guard aborted: reported as that request.
        if "net::ERR_BLOCKED_BY_CLIENT" in text:
            return
        if any(p.search(text) for p in self._allowed_console):
            return
        where = message.location.get("url", "")
        self.console_errors.append(f"{text} ({where})" if where else text)

    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught page error: {m}" for m in self.page_errors]
            + [
                f"request beyond the server under test (aborted): {r}"
                for r in self.external_requests
            ]
        )

    def check(self) -> None:
        problems = self.problems()
        if problems:
            pytest.fail(
                "the page misbehaved:\n  " + "\n  ".join(problems),
                pytrace=False,
            )


def _describe_error(error: Any) -> str:
    name = getattr(error, "name", "") or "Error"
    message = getattr(error, "message", "") or str(error)
    return f"{name}: {message}"


# -- screenshots ------------------------------------------------------------------------

SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")


def screenshot_saver(tmp_dir: Path, docs_dir: Path | None) -> Callable[..., Path]:
    """``save(page, name, **options) -> Path``: a PNG of ``page`` named ``name.png`` in
    ``tmp_dir``, copied into ``docs_dir`` when there is one. Options pass through to
    Playwright's ``page.screenshot`` (``full_page=True``, ``clip=…``)."""
    import shutil

    def save(page: Any, name: str, **options: Any) -> Path:
        if not SLUG.fullmatch(name):
            raise ValueError(f"screenshot name {name!r}: lowercase letters, digits and -")
        path = tmp_dir / f"{name}.png"
        page.screenshot(path=str(path), animations="disabled", caret="hide", **options)
        if docs_dir is not None:
            docs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, docs_dir / path.name)
        return path

    return save
