"""Concurrent clients against one API process: requests/s, p99 latency and failures of
``GET /v1/jobs/{id}/metrics`` and ``/attempts`` at 50, 100, 200 and 400 clients, for the
code before the database gate (service/gate.py) and after it, side by side.

Two uvicorn processes (``python -m uvicorn --factory service.main:create_app``) serve
the same embedded database (a SQLite file; the SQL broker's file beside it), one with
``PYTHONPATH=<before checkout>`` first on its path, the other with this checkout. A job
of 20 epochs with its metrics and attempt rows is written directly, for one user with
one token. No worker runs.

For each round, each level and each side in turn (interleaved, so drift in the machine
affects both alike): C clients start at once, each sending ``--per-client`` requests one
after another (alternately ``/metrics`` and ``/attempts``, each with a ``--timeout``
client timeout), while a thread polls ``/healthz`` with a one-second timeout. Then the
script waits until the server answers normally again (a successful request), up to
``--recover`` seconds, and records how long that took. Per side and level it reports the
medians over rounds of: answered requests per second (200s only), p50 and p99 latency
of the 200s, counts of 503s, 500s and requests without an answer, failed health polls,
the longest stretch without a health answer, and the recovery time.

    git worktree add /tmp/load-before d3bef9a        # the code before the gate, once
    .venv/bin/python benchmarks/api_concurrency.py                       # 3 rounds
    .venv/bin/python benchmarks/api_concurrency.py --rounds 1 --levels 50,400 --timeout 20

Writes ``benchmarks/results/api_concurrency.json`` (``--out``) and prints a table. The
code before the gate can stay unresponsive for minutes after a large burst (that is the
defect): ``--timeout`` and ``--recover`` bound what one burst may cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from benchmarks.api_latency import free_port, healthy, wait_until  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    ROOT,
    machine_info,
    percentile,
    table,
    write_results,
)

EPOCHS = 20
HEALTH_TIMEOUT = 1.0
DEFAULT_BEFORE = Path("/tmp/load-before")


def seed(database_url: str, *, user: str = "bench", epochs: int = EPOCHS) -> tuple[str, str]:
    """On a migrated database: ``user``'s token, and a succeeded job of theirs with
    ``epochs`` metrics rows and one attempt, written directly as a worker leaves them.
    (tests/integration/test_load.py seeds its database with this too.)"""
    from service.auth import service as auth_service
    from service.db import make_engine, make_sessionmaker, session_scope, utcnow
    from service.jobs.models import EpochMetric, JobAttempt
    from service.jobs.service import new_job
    from service.jobs.states import JobStatus
    from service.spec import JobSpec

    spec = JobSpec.model_validate({"dataset": {"name": "digits"}, "training": {"epochs": epochs}})
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            owner = auth_service.create_user(session=session, name=user)
            _, token = auth_service.create_token(session=session, user_id=owner.id)
            job = new_job(spec, spec.dataset.known_shape(), owner.id)
            session.add(job)
            session.flush()
            for epoch in range(1, epochs + 1):
                values = {
                    "train_loss": 1.0 / epoch,
                    "val_loss": 1.2 / epoch,
                    "train_accuracy": 1 - 0.5 / epoch,
                    "val_accuracy": 1 - 0.6 / epoch,
                    "lr": 0.001,
                }
                session.add(EpochMetric(job_id=job.id, epoch=epoch, values=values))
            attempt = JobAttempt(
                job_id=job.id,
                attempt=1,
                worker=user,
                ended_at=utcnow(),
                outcome=JobStatus.SUCCEEDED,
            )
            session.add(attempt)
            job.status, job.attempt, job.epochs_completed = JobStatus.SUCCEEDED, 1, epochs
            job.started_at = job.finished_at = utcnow()
            job_id = job.id
    finally:
        engine.dispose()
    return token, job_id


@dataclass
class Server:
    """One API process serving ``code`` (a checkout whose ``service`` it imports)."""

    side: str
    code: Path
    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"api-{self.side}.log"

    def start(self) -> None:
        argv = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        # `python -m` puts its working directory first on the path: neither checkout.
        run_dir = self.workdir / f"run-{self.side}"
        run_dir.mkdir(exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=run_dir,
                env={**self.env, "PYTHONPATH": str(self.code)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(lambda: self._alive() and healthy(self.url), 90, f"the {self.side} API")

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            output = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {self.side} API exited:\n{output}")
        return True

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class HealthWatch:
    """Polls /healthz from a thread of its own with a one-second timeout."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.polls = 0
        self.failed = 0
        self.longest_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last_ok = time.monotonic()
        with httpx.Client(timeout=HEALTH_TIMEOUT, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    ok = client.get(f"{self.url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                now = time.monotonic()
                self.polls += 1
                if ok:
                    last_ok = now
                else:
                    self.failed += 1
                self.longest_gap = max(self.longest_gap, now - last_ok)
                self._stop.wait(0.1)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(HEALTH_TIMEOUT + 5)


async def _burst(
    url: str, token: str, job_id: str, clients: int, per_client: int, timeout: float
) -> tuple[float, list[tuple[str, float]]]:
    """Wall seconds, and (outcome, seconds) per request: outcome is the status code or
    the client error's name."""
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    headers = {"Authorization": f"Bearer {token}"}
    paths = [f"/v1/jobs/{job_id}/metrics", f"/v1/jobs/{job_id}/attempts"]
    out: list[tuple[str, float]] = []
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=timeout, trust_env=False
    ) as client:

        async def one(i: int) -> None:
            for k in range(per_client):
                started = time.perf_counter()
                try:
                    r = await client.get(paths[(i + k) % 2])
                    outcome = str(r.status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                out.append((outcome, time.perf_counter() - started))

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(clients)))
        wall = time.perf_counter() - started
    return wall, out


def recover(server: Server, token: str, job_id: str, limit: float) -> float | None:
    """Seconds until a request is served normally again; None past ``limit``."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() - started < limit:
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(
                f"{server.url}/v1/jobs/{job_id}/metrics",
                headers=headers,
                timeout=HEALTH_TIMEOUT,
                trust_env=False,
            )
            if r.status_code == 200:
                return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    return None


def measure(
    server: Server, token: str, job_id: str, clients: int, args: argparse.Namespace
) -> dict[str, Any]:
    with HealthWatch(server.url) as health:
        wall, results = asyncio.run(
            _burst(server.url, token, job_id, clients, args.per_client, args.timeout)
        )
    ok = [s for outcome, s in results if outcome == "200"]
    return {
        "requests": len(results),
        "ok": len(ok),
        "busy_503": sum(outcome == "503" for outcome, _ in results),
        "errors_500": sum(outcome == "500" for outcome, _ in results),
        "no_answer": sum(not outcome.isdigit() for outcome, _ in results),
        "other": sum(
            outcome.isdigit() and outcome not in ("200", "503", "500") for outcome, _ in results
        ),
        "wall_s": round(wall, 3),
        "ok_per_s": round(len(ok) / wall, 1),
        "p50_ms": round(percentile(ok, 50) * 1000, 1) if ok else None,
        "p99_ms": round(percentile(ok, 99) * 1000, 1) if ok else None,
        "healthz_polls": health.polls,
        "healthz_failed": health.failed,
        "healthz_longest_gap_s": round(health.longest_gap, 2),
        "recovered_after_s": recover(server, token, job_id, args.recover),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return round(statistics.median(values), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--before",
        type=Path,
        default=DEFAULT_BEFORE,
        help="a checkout of the code before the gate (git worktree add …)",
    )
    parser.add_argument("--skip-before", action="store_true", help="measure this code only")
    parser.add_argument("--levels", default="50,100,200,400", help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-client", type=int, default=2, help="requests per client")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout, s")
    parser.add_argument(
        "--recover",
        type=float,
        default=180.0,
        help="how long to wait for a server to serve again after a burst",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "api_concurrency.json")
    args = parser.parse_args()  # fmt: skip
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    sides = [("after", ROOT)]
    if not args.skip_before:
        if not (args.before / "service" / "main.py").is_file():
            sys.exit(f"no checkout at {args.before}: `git worktree add {args.before} d3bef9a`")
        sides.insert(0, ("before", args.before.resolve()))

    workdir = Path(tempfile.mkdtemp(prefix="descent-concurrency-"))
    data = workdir / "data"
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith("DESCENT_") and k != "PYTHONPATH"
    }
    env = {**inherited, "DESCENT_DATA_DIR": str(data), "DESCENT_QUEUE": "bench-concurrency"}
    from service.config import Settings
    from service.migrate import upgrade

    database_url = str(Settings(data_dir=data).database_url)
    upgrade(database_url)
    token, job_id = seed(database_url)
    servers = [Server(side, code, workdir, env) for side, code in sides]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    started = time.monotonic()
    try:
        for server in servers:
            server.start()
        for round_ in range(args.rounds):
            for clients in levels:
                for server in servers:
                    result = measure(server, token, job_id, clients, args)
                    runs.setdefault((server.side, clients), []).append(result)
                    print(f"round {round_ + 1} {server.side:6} {clients:4} clients: {result}")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    keys = ["ok_per_s", "p50_ms", "p99_ms", "ok", "busy_503", "errors_500", "no_answer",
            "healthz_failed", "healthz_longest_gap_s", "recovered_after_s"]  # fmt: skip
    summary = [
        {"side": side, "clients": clients, **{k: _median(rs, k) for k in keys}}
        for (side, clients), rs in runs.items()
    ]
    summary.sort(key=lambda r: (r["clients"], r["side"] != "before"))
    print(
        table(
            ["side", "clients", *keys],
            [[r["side"], r["clients"], *(r[k] for k in keys)] for r in summary],
        )
    )
    payload = {
        "machine": machine_info(
            benchmark="api_concurrency",
            backend="embedded (SQLite + SQL broker)",
            before=str(args.before) if not args.skip_before else None,
            levels=levels,
            rounds=args.rounds,
            per_client=args.per_client,
            client_timeout_s=args.timeout,
            seconds=round(time.monotonic() - started, 1),
        ),
        "summary": summary,
        "runs": [{"side": s, "clients": c, "results": rs} for (s, c), rs in runs.items()],
    }
    print(f"wrote {write_results(args.out, payload)}")


if __name__ == "__main__":
    main()
