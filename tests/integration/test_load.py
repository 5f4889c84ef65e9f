"""400 concurrent requests at one real API process, on both storage/broker pairs.

One authenticated user fires :data:`BURST` concurrent ``GET /v1/jobs/{id}/metrics`` and
``/attempts`` (half each) at a uvicorn process over loopback, while a thread polls
``/healthz`` with a one-second client timeout. Every answer must be 200 or a 503 with
``Retry-After`` (never a 500, never a timeout), every health poll must answer 200 in
time, and right after the burst a request is served and the pool is back to idle. In
the second case half of the clients give up early: their requests are dropped, and the
rest are served as before.

Before service/gate.py the API deadlocked here: requests held a connection while they
waited for a thread, 500s came from the pool's timeout, and /healthz stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from faults import free_port
from support import ROOT, Backend, bearer, wait_for

from benchmarks.api_concurrency import seed

# `server`: a real API process; `serial`: its `/healthz` answers within a second under
# the burst, which needs the cores the parallel pass would be using.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.server,
    pytest.mark.serial,
    pytest.mark.timeout(600),
]

#: Concurrent clients in a burst (half on /metrics, half on /attempts).
BURST = 400
#: What a burst request waits for its answer at most; the API answers long before.
ANSWER_SECONDS = 90.0
#: What a health poll waits at most: the promise is an answer within a second.
HEALTH_SECONDS = 1.0
#: An early-leaving client's patience for its answer, once its request is sent: it is
#: gone while its request still waits behind the others.
LEAVE_SECONDS = 0.2
#: How long the departure test keeps the gate's turns taken: well past LEAVE_SECONDS,
#: well below DESCENT_DB_QUEUE_SECONDS (10), so the waiting requests are not refused.
HOLD_SECONDS = 2.0
EPOCHS = 20


@dataclass
class Api:
    url: str
    token: str
    job_id: str
    log: Path
    proc: subprocess.Popen[bytes]

    def probe(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/__probe", timeout=10).json()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def api(module_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp: Path = tmp_path_factory.mktemp("load")
    backend = module_backend
    token, job_id = seed(str(backend.settings().database_url), user="loaded", epochs=EPOCHS)
    port = free_port()
    log = tmp / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("api_server.py")), str(port)],
            cwd=ROOT,
            env={**backend.process_env(), **pythonpath()},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = Api(f"http://127.0.0.1:{port}", token, job_id, log, proc)
    try:
        wait_for(lambda: answers(api), 60, what=f"the API to start:\n{api.output()}")
        yield api
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        proc.kill()
        proc.wait()


def pythonpath() -> dict[str, str]:
    """The checkout the API's code comes from: this one, unless PYTHONPATH names another
    first (how this test was run against the code before the gate)."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([*parts, str(ROOT)])}


def answers(api: Api) -> bool:
    if api.proc.poll() is not None:
        raise AssertionError(f"the API exited:\n{api.output()}")
    try:
        return httpx.get(f"{api.url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class HealthPoller:
    """Polls /healthz from a thread of its own (not the burst's event loop), each poll
    with a one-second client timeout; records every failure."""

    url: str
    polls: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _polled: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=HEALTH_SECONDS) as client:
            while True:
                try:
                    r = client.get(f"{self.url}/healthz")
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                self.polls += 1
                self._polled.set()
                if self._stop.wait(0.05):
                    return

    @contextlib.contextmanager
    def running(self) -> Iterator[HealthPoller]:
        """Polls from before the burst (one poll has answered) until it has ended."""
        thread = threading.Thread(target=self.run, name="healthz-poller", daemon=True)
        thread.start()
        try:
            assert self._polled.wait(30), "the first health poll never ended"
            yield self
        finally:
            self._stop.set()
            thread.join(10)


async def burst(api: Api, *, leaving: int = 0) -> list[httpx.Response | str]:
    """BURST requests at once; the last ``leaving`` to start give up LEAVE_SECONDS after
    sending theirs. The answers of the others (or what went wrong, as a string)."""
    limits = httpx.Limits(max_connections=BURST + 10, max_keepalive_connections=0)
    paths = [f"/v1/jobs/{api.job_id}/{'metrics' if i % 2 else 'attempts'}" for i in range(BURST)]
    async with httpx.AsyncClient(
        base_url=api.url, headers=bearer(api.token), limits=limits, timeout=ANSWER_SECONDS
    ) as client:

        async def one(i: int) -> httpx.Response | str | None:
            if i >= BURST - leaving:
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(paths[i], timeout=httpx.Timeout(None, read=LEAVE_SECONDS))
                return None
            try:
                return await client.get(paths[i])
            except httpx.HTTPError as exc:
                return f"{paths[i]}: {type(exc).__name__}: {exc!r}"

        got = await asyncio.gather(*(one(i) for i in range(BURST)))
    return [g for g in got if g is not None]


def check_burst(api: Api, *, leaving: int) -> tuple[int, int]:
    """Run a burst with /healthz polled throughout; assert what the module promises.
    Returns (200s, 503s)."""
    with HealthPoller(api.url).running() as health:
        got = asyncio.run(burst(api, leaving=leaving))
    failed = [g for g in got if isinstance(g, str)]
    answered = [r for r in got if isinstance(r, httpx.Response)]
    codes = [r.status_code for r in answered]
    seen = (
        f"answers {dict(Counter(codes))}, no answer {len(failed)}, /healthz polls "
        f"{health.polls} of which failed {len(health.failures)}"
    )
    assert not failed, f"{seen}; e.g. {failed[:3]}"
    bad = [
        f"{r.status_code} {r.text[:200]}"
        for r in answered
        if not (
            r.status_code == 200
            or (r.status_code == 503 and r.headers.get("retry-after") and "error" in r.json())
        )
    ]
    assert not bad, f"{seen}; neither 200 nor 503 with Retry-After: {bad[:5]}"
    assert len(codes) == BURST - leaving, seen
    assert health.polls >= 3, seen  # polled throughout, not once at the end
    assert not health.failures, f"{seen}; /healthz: {health.failures[:5]}"
    # Right after: served normally, and every connection back in the pool.
    r = httpx.get(f"{api.url}/v1/jobs/{api.job_id}/metrics", headers=bearer(api.token), timeout=30)
    assert r.status_code == 200, r.text
    assert [e["epoch"] for e in r.json()["epochs"]] == list(range(1, EPOCHS + 1))
    wait_for(lambda: api.probe()["checked_out"] == 0, 30, what="the pool to be idle")
    return codes.count(200), codes.count(503)


def test_a_burst_of_concurrent_requests_is_served_or_refused_never_failed(api: Api) -> None:
    ok, busy = check_burst(api, leaving=0)
    assert ok > 0, (ok, busy)  # not refused wholesale


def test_requests_of_clients_that_left_are_dropped(api: Api) -> None:
    before = api.probe()["dropped"]
    # Every turn taken for a while: the burst's requests wait, and the leaving clients
    # are gone by the time theirs come.
    held = httpx.get(f"{api.url}/__hold", params={"seconds": HOLD_SECONDS}, timeout=30).json()
    assert held["held"] > 0
    ok, busy = check_burst(api, leaving=BURST // 2)
    assert ok > 0, (ok, busy)
    # Some of the departed clients' requests were still waiting for a turn when their
    # clients left, and got no database work (the app answered them 499, unheard).
    assert api.probe()["dropped"] > before
