"""API latency and submit-to-done time, against a real server started the way a user does.

Embedded mode (the default) runs ``descent up`` (``python -m service.cli up``: SQLite, the
SQL broker and one supervised worker) on a free loopback port in a temporary data dir.
With ``--database-url`` and ``--broker-url`` it runs the full stack instead: ``descent
migrate``, ``descent api`` and ``descent worker`` as separate processes, on a fresh
PostgreSQL database (created, and dropped at the end, when the URL names none or one that
does not exist yet) and a Redis queue of its own. Workers train with one torch thread.

One client (httpx, keep-alive, loopback only) sends requests one after another:

* submit-to-done: small jobs (iris, 5 epochs) submitted one at a time, after a random
  pause of up to 1 s (so they do not fall into step with a polling broker), and polled
  every 20 ms, split by the server's own timestamps into queue wait (created → started: the
  broker's delivery, the worker's claim, and for the first job of a fresh worker process
  its imports) and run time (started → finished: training and recording the metrics);
* behind cancelled jobs: ``--drain-jobs`` jobs submitted and cancelled at once, then one
  more small job timed from submit to done: the worker takes every cancelled message
  off the queue and skips it first, so this shows what each one costs;
* ``--requests`` timed requests (after a few untimed ones) per endpoint: ``POST /v1/jobs``
  with valid specs (each job cancelled at once, that request timed too, so the worker
  only skips it), ``POST /v1/jobs`` with rejected specs (422), ``GET /v1/jobs/{id}``,
  ``GET /v1/jobs?limit=50``, ``GET /v1/jobs/{id}/metrics`` (a 100-epoch job), ``GET
  /v1/catalog`` and ``GET /healthz``.

    .venv/bin/python benchmarks/api_latency.py
    .venv/bin/python benchmarks/api_latency.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ \\
        --broker-url redis://127.0.0.1:6379/0

Writes ``benchmarks/results/api_latency-embedded.json`` (or ``-postgres-redis.json``;
``--out``) and prints a table. The server is always stopped: SIGINT, then SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    ROOT,
    machine_info,
    median,
    summarize_ms,
    table,
    write_results,
)

TERMINAL = {"succeeded", "failed", "cancelled", "diverged"}
POLL_SECONDS = 0.02
WARMUP_REQUESTS = 5

#: The submit-to-done job: tiny, so the figure is mostly queueing and bookkeeping.
SMALL_JOB: dict[str, Any] = {
    "name": "bench-e2e",
    "dataset": {"name": "iris"},
    "model": {"kind": "mlp", "hidden": [16]},
    "training": {"epochs": 5, "batch_size": 16},
}
#: The job whose metrics are read back: 100 epochs, so 100 rows.
METRICS_JOB: dict[str, Any] = {
    "name": "bench-metrics",
    "dataset": {"name": "iris"},
    "model": {"kind": "mlp", "hidden": [16]},
    "training": {"epochs": 100, "batch_size": 32},
}
#: Valid specs for POST /v1/jobs, from the smallest to every section filled in.
VALID_SPECS: list[dict[str, Any]] = [
    {"dataset": {"name": "digits"}},
    SMALL_JOB,
    {
        "dataset": {"name": "moons", "n_samples": 2000, "noise": 0.2},
        "model": {"kind": "mlp", "hidden": [32, 32], "activation": "tanh"},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        "schedule": {"name": "cosine", "warmup_epochs": 2},
        "training": {"epochs": 30, "batch_size": 64},
    },
    {
        "name": "digits-adam",
        "dataset": {"name": "digits", "val_fraction": 0.2, "scaling": "standard"},
        "model": {"kind": "mlp", "hidden": [128, 64], "dropout": 0.1, "init": "he_normal"},
        "optimizer": {"name": "adam", "lr": 0.001},
        "schedule": {"name": "one_cycle", "max_lr": 0.01},
        "regularization": {
            "l2": 0.0001,
            "early_stopping": {"monitor": "val_loss", "patience": 5},
            "grad_clip": {"max_norm": 1.0},
        },
        "training": {"epochs": 20, "batch_size": 32},
    },
    {"dataset": {"name": "digits"}, "model": {"kind": "cnn", "channels": [16, 32]}},
    {"dataset": {"name": "diabetes"}, "model": {"kind": "mlp", "hidden": [64, 64]}},
]
#: Specs the API refuses with a 422: field validation and the checks against the dataset.
INVALID_SPECS: list[dict[str, Any]] = [
    {"optimizer": {"name": "adamx"}},
    {"dataset": {"name": "iris"}, "training": {"batch_size": 1000}},
    {"training": {"epochs": 100_000}},
    {"dataset": {"name": "iris"}, "model": {"kind": "cnn"}},
    {"dataset": {"name": "moons", "n_samples": 10_000_000}},
    {"model": {"kind": "mlp", "hidden": [64], "activation": "swish"}},
]


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    return {**env, "PYTHONUNBUFFERED": "1", "DESCENT_TORCH_THREADS": "1", **extra}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Proc:
    """A child process in a process group of its own, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)

    def wait_or_kill(self, timeout: float) -> bool:
        """True when it exited by itself within ``timeout``; its group is killed either way."""
        try:
            self.proc.wait(timeout)
            clean = True
        except subprocess.TimeoutExpired:
            clean = False
        _kill_group(self.proc.pid)  # whatever is left of its group
        self.proc.wait()
        return clean


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` holds; raises after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


class Stack:
    """The server under test. ``start`` returns when /healthz answers and a worker is ready."""

    mode: str
    base_url: str
    token: str  # an API token, known once started
    procs: list[Proc]
    worker_log: Proc

    def start(self) -> dict[str, float]:
        raise NotImplementedError

    def stop(self) -> dict[str, Any]:
        raise NotImplementedError

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.procs)

    def _wait_ready(self, started: float) -> dict[str, float]:
        def alive() -> bool:
            dead = [p.name for p in self.procs if p.proc.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited early:\n{self.logs()}")
            return True

        wait_until(lambda: alive() and healthy(self.base_url), 90, "/healthz")
        api_ready = time.monotonic() - started
        wait_until(lambda: alive() and " ready." in self.worker_log.output(), 90, "the worker")
        return {
            "api_ready_seconds": round(api_ready, 2),
            "worker_ready_seconds": round(time.monotonic() - started, 2),
        }


class EmbeddedStack(Stack):
    """``descent up``: migrations, the API and a supervised worker in one command."""

    mode = "embedded"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs = []

    def start(self) -> dict[str, float]:
        started = time.monotonic()
        up = Proc(
            "descent up",
            [sys.executable, "-m", "service.cli", "up", "--port", str(self.port),
             "--data-dir", str(self.workdir / "data")],
            base_env({}),
            self.workdir / "up.log",
        )  # fmt: skip
        self.procs = [up]
        self.worker_log = up  # the supervised worker writes to the same output
        ready = self._wait_ready(started)
        self.token = (self.workdir / "data" / "token").read_text().strip()  # made on first start
        return ready

    def _worker_pids(self) -> list[int]:
        if not self.procs:
            return []
        return [
            int(p) for p in re.findall(r"worker \d+ started \(pid (\d+)\)", self.procs[0].output())
        ]

    def stop(self) -> dict[str, Any]:
        if not self.procs:
            return {}
        up = self.procs[0]
        started = time.monotonic()
        up.interrupt()
        clean = up.wait_or_kill(30)
        seconds = time.monotonic() - started
        # descent up stops its workers; should it have been killed, they are orphans
        # in process groups of their own: end those groups too.
        for pid in self._worker_pids():
            _kill_group(pid)
        return {"stopped_cleanly": clean, "shutdown_seconds": round(seconds, 2)}


class FullStack(Stack):
    """``descent migrate``, ``descent api`` and ``descent worker`` on PostgreSQL and Redis."""

    mode = "postgres-redis"

    def __init__(self, workdir: Path, database_url: str, broker_url: str) -> None:
        from sqlalchemy import make_url

        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs = []
        self.broker_url = broker_url
        self.queue = f"bench-{uuid.uuid4().hex[:10]}"
        url = make_url(database_url)
        self.created_db = False
        if not url.database:
            url = url.set(database=f"descent_bench_{uuid.uuid4().hex[:10]}")
        self.url = url
        self.database_url = url.render_as_string(hide_password=False)

    def _admin(self) -> Any:
        import psycopg

        admin = self.url.set(drivername="postgresql", database="postgres")
        return psycopg.connect(
            admin.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )

    def start(self) -> dict[str, float]:
        with self._admin() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.url.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.url.database}"')
                self.created_db = True
        env = base_env(
            {
                "DESCENT_DATA_DIR": str(self.workdir / "data"),
                "DESCENT_DATABASE_URL": self.database_url,
                "DESCENT_BROKER_URL": self.broker_url,
                "DESCENT_QUEUE": self.queue,
            }
        )
        cli = [sys.executable, "-m", "service.cli"]
        started = time.monotonic()
        migrate = subprocess.run(
            [*cli, "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"descent migrate failed:\n{migrate.stdout}{migrate.stderr}")
        migrated = time.monotonic() - started
        user = subprocess.run(
            [*cli, "admin", "create-user", f"bench-{uuid.uuid4().hex[:6]}", "--admin"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if user.returncode != 0:
            raise RuntimeError(f"descent admin create-user failed:\n{user.stderr}")
        self.token = user.stdout.strip()
        api = Proc(
            "descent api",
            [*cli, "api", "--port", str(self.port)],
            env,
            self.workdir / "api.log",
        )
        self.procs.append(api)
        worker = Proc(
            "descent worker", [*cli, "worker", "--gpus", "0"], env, self.workdir / "worker.log"
        )
        self.procs.append(worker)
        self.worker_log = worker
        return {"migrate_seconds": round(migrated, 2), **self._wait_ready(started)}

    def stop(self) -> dict[str, Any]:
        started = time.monotonic()
        for p in self.procs:
            p.interrupt()
        clean = all([p.wait_or_kill(20) for p in self.procs])
        seconds = time.monotonic() - started
        self._cleanup()
        return {"stopped_cleanly": clean, "shutdown_seconds": round(seconds, 2)}

    def _cleanup(self) -> None:
        if self.created_db:
            try:
                with self._admin() as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.url.database}" WITH (FORCE)')
            except Exception as exc:  # report, and go on cleaning
                print(f"could not drop database {self.url.database}: {exc}", file=sys.stderr)
        try:
            import redis

            client = redis.Redis.from_url(self.broker_url, socket_timeout=5)
            keys = list(client.scan_iter(match=f"*{self.queue}*"))
            if keys:
                client.delete(*keys)
            client.close()
        except Exception as exc:
            print(f"could not clean Redis keys of queue {self.queue}: {exc}", file=sys.stderr)


# ------------------------------------------------------------------ measurements


class Bench:
    """One keep-alive client; every timed request checks its status code."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            timeout=60,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"},
        )
        self.unexpected: list[str] = []

    def close(self) -> None:
        self.client.close()

    def timed(self, method: str, url: str, expect: int, **kwargs: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        response = self.client.request(method, url, **kwargs)
        elapsed = time.perf_counter() - started
        if response.status_code != expect:
            self.unexpected.append(
                f"{method} {url}: {response.status_code} (wanted {expect}): {response.text[:300]}"
            )
        return elapsed, response

    def submit(self, spec: dict[str, Any]) -> str:
        response = self.client.post("/v1/jobs", json=spec)
        response.raise_for_status()
        return response.json()["id"]

    def wait_done(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in TERMINAL:
                return job
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f}s")

    def submit_to_done(self, spec: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        response = self.client.post("/v1/jobs", json=spec)
        submitted = time.perf_counter()
        response.raise_for_status()
        job = self.wait_done(response.json()["id"])
        seen = time.perf_counter()
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} {job['status']}: {job.get('status_reason')}")
        created, start, finish = (
            dt.datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")
        )
        return {
            "total_seconds": round(seen - started, 4),
            "submit_seconds": round(submitted - started, 4),
            "queue_wait_seconds": round((start - created).total_seconds(), 4),
            "run_seconds": round((finish - start).total_seconds(), 4),
        }

    def repeat(
        self, n: int, call: Callable[[int], float], warmup: int = WARMUP_REQUESTS
    ) -> list[float]:
        for i in range(warmup):
            call(-1 - i)
        return [call(i) for i in range(n)]


def _cancel_outcomes(bench: Bench) -> dict[str, int]:
    """How the jobs cancelled right after their submission ended: before the worker took
    them, stopped by the worker at a batch boundary, or finished anyway (a running job
    reads cancel requests every DESCENT_CANCEL_POLL_SECONDS, so a tiny one can end first)."""
    counts = {"before_start": 0, "while_running": 0, "finished_anyway": 0, "still_running": 0}
    offset = 0
    while True:
        page = bench.client.get("/v1/jobs", params={"limit": 200, "offset": offset}).json()
        for job in page["items"]:
            if not job["cancel_requested"]:
                continue
            if job["status"] in ("queued", "running"):
                counts["still_running"] += 1
            elif job["status"] != "cancelled":
                counts["finished_anyway"] += 1
            elif "before it started" in (job["status_reason"] or ""):
                counts["before_start"] += 1
            else:
                counts["while_running"] += 1
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return counts


def _e2e_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("total_seconds", "queue_wait_seconds", "run_seconds")
    return {f"{k}_median": round(median([r[k] for r in runs]), 4) for k in keys} | {
        f"{k}_max": round(max(r[k] for r in runs), 4) for k in keys
    }


def measure(bench: Bench, *, requests: int, e2e_jobs: int, drain_jobs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}

    # Submit-to-done first, on an idle worker. The first job of a fresh worker process
    # pays its one-off imports; it is kept apart from the others.
    # A random pause before each later one, so a submission does not land at the same
    # point of a polling broker's cycle every time (that would bias the queue wait).
    pauses = random.Random(0)
    runs = [bench.submit_to_done(SMALL_JOB)]
    for _ in range(e2e_jobs - 1):
        time.sleep(pauses.uniform(0, 1))
        runs.append(bench.submit_to_done(SMALL_JOB))
    later = _e2e_summary(runs[1:]) if len(runs) > 1 else None
    out["submit_to_done"] = {
        "job": SMALL_JOB,
        "first_job": runs[0],
        "later_jobs": later,
        "runs": runs,
    }

    # A job queued behind cancelled ones: the worker takes each message off the queue
    # and skips it before it reaches this one.
    if drain_jobs:
        for _ in range(drain_jobs):
            bench.client.post(f"/v1/jobs/{bench.submit(SMALL_JOB)}/cancel").raise_for_status()
        behind = bench.submit_to_done(SMALL_JOB)
        baseline = later["total_seconds_median"] if later else runs[0]["total_seconds"]
        out["submit_to_done_behind_cancelled"] = {
            "cancelled_ahead": drain_jobs,
            **behind,
            "seconds_per_cancelled_job": round(
                max(0.0, behind["total_seconds"] - baseline) / drain_jobs, 4
            ),
        }

    metrics_job = bench.submit(METRICS_JOB)
    bench.wait_done(metrics_job)
    endpoints: dict[str, list[float]] = {}

    def post_valid(i: int) -> float:
        elapsed, response = bench.timed(
            "POST", "/v1/jobs", 202, json=VALID_SPECS[i % len(VALID_SPECS)]
        )
        # Cancelled at once, so the worker skips it instead of training it while the
        # other endpoints are measured.
        cancel, _ = bench.timed("POST", f"/v1/jobs/{response.json()['id']}/cancel", 202)
        if i >= 0:
            endpoints.setdefault("POST /v1/jobs/{id}/cancel (just submitted)", []).append(cancel)
        return elapsed

    def post_invalid(i: int) -> float:
        return bench.timed("POST", "/v1/jobs", 422, json=INVALID_SPECS[i % len(INVALID_SPECS)])[0]

    endpoints["POST /v1/jobs (valid, 202)"] = bench.repeat(requests, post_valid)
    endpoints["POST /v1/jobs (rejected, 422)"] = bench.repeat(requests, post_invalid)
    gets = {
        "GET /v1/jobs/{id}": f"/v1/jobs/{metrics_job}",
        "GET /v1/jobs?limit=50": "/v1/jobs?limit=50",
        "GET /v1/jobs/{id}/metrics (100 epochs)": f"/v1/jobs/{metrics_job}/metrics",
        "GET /v1/catalog": "/v1/catalog",
        "GET /healthz": "/healthz",
    }
    for name, url in gets.items():
        endpoints[name] = bench.repeat(
            requests, lambda _i, url=url: bench.timed("GET", url, 200)[0]
        )

    out["endpoints"] = {name: summarize_ms(times) for name, times in endpoints.items()}
    out["cancelled_jobs"] = _cancel_outcomes(bench)
    out["jobs_in_database"] = bench.client.get("/v1/jobs?limit=1").json()["total"]
    out["unexpected_responses"] = bench.unexpected[:20]
    out["unexpected_count"] = len(bench.unexpected)
    return out


# ------------------------------------------------------------------ main


def print_report(payload: dict[str, Any]) -> None:
    res = payload["results"]
    print(f"\nmode: {payload['mode']}   startup: {payload['startup']}")
    print(
        table(
            ["endpoint", "n", "p50 ms", "p95 ms", "max ms", "mean ms"],
            [
                [name, s["n"], s["p50_ms"], s["p95_ms"], s["max_ms"], s["mean_ms"]]
                for name, s in res["endpoints"].items()
            ],
        )
    )
    e2e = res["submit_to_done"]
    rows = [["first job (fresh worker process)", *_e2e_row(e2e["first_job"])]]
    if e2e["later_jobs"]:
        later = e2e["later_jobs"]
        rows.append(
            [
                f"later jobs, median of {len(e2e['runs']) - 1}",
                later["total_seconds_median"],
                later["queue_wait_seconds_median"],
                later["run_seconds_median"],
            ]
        )
        rows.append(
            [
                "later jobs, max",
                later["total_seconds_max"],
                later["queue_wait_seconds_max"],
                later["run_seconds_max"],
            ]
        )
    behind = res.get("submit_to_done_behind_cancelled")
    if behind:
        rows.append([f"behind {behind['cancelled_ahead']} cancelled jobs", *_e2e_row(behind)])
    print()
    print(table(["submit to succeeded (iris, 5 epochs)", "total s", "queue wait s", "run s"], rows))
    if behind:
        print(f"each cancelled job ahead added {behind['seconds_per_cancelled_job']:.3f} s")
    print(f"jobs cancelled right after submission: {res['cancelled_jobs']}")
    if res["unexpected_count"]:
        first = res["unexpected_responses"][0]
        print(f"\n{res['unexpected_count']} unexpected responses, e.g. {first}")


def _e2e_row(run: dict[str, Any]) -> list[float]:
    return [run["total_seconds"], run["queue_wait_seconds"], run["run_seconds"]]


def raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="Timed requests per endpoint.")
    parser.add_argument(
        "--e2e-jobs", type=int, default=8, help="Small jobs timed from submit to succeeded."
    )
    parser.add_argument(
        "--drain-jobs",
        type=int,
        default=20,
        help="Cancelled jobs queued ahead of one more small job (0: skip that figure).",
    )
    parser.add_argument(
        "--database-url",
        help="Run the full stack on this PostgreSQL (SQLAlchemy URL; with no database name, "
        "or one that does not exist, a database is created and dropped afterwards).",
    )
    parser.add_argument("--broker-url", help="Redis URL for the full stack (with --database-url).")
    parser.add_argument("--out", type=Path, default=None, help="Results file.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary data dir and logs.")
    args = parser.parse_args(argv)
    if bool(args.database_url) != bool(args.broker_url):
        parser.error("--database-url and --broker-url go together")
    if args.requests < 1 or args.e2e_jobs < 1 or args.drain_jobs < 0:
        parser.error("--requests and --e2e-jobs must be at least 1, --drain-jobs at least 0")

    # SIGTERM too runs the finally below, which stops the server.
    signal.signal(signal.SIGTERM, raise_exit)
    machine = machine_info()  # before the run: the load average is the machine's, not ours
    workdir = Path(tempfile.mkdtemp(prefix="descent-bench-"))
    stack: Stack = (
        FullStack(workdir, args.database_url, args.broker_url)
        if args.database_url
        else EmbeddedStack(workdir)
    )
    out_path = args.out or RESULTS_DIR / f"api_latency-{stack.mode}.json"
    started = time.perf_counter()
    bench: Bench | None = None
    stopped: dict[str, Any] = {}
    try:
        startup = stack.start()
        bench = Bench(stack.base_url, stack.token)
        results = measure(
            bench, requests=args.requests, e2e_jobs=args.e2e_jobs, drain_jobs=args.drain_jobs
        )
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        if bench is not None:
            bench.close()
        stopped = stack.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    payload = {
        "benchmark": "api_latency",
        "mode": stack.mode,
        "machine": machine,
        "options": {
            "requests_per_endpoint": args.requests,
            "warmup_requests": WARMUP_REQUESTS,
            "e2e_jobs": args.e2e_jobs,
            "drain_jobs": args.drain_jobs,
            "poll_seconds": POLL_SECONDS,
            "worker_torch_threads": 1,
            "broker": "redis" if args.broker_url else "sqlalchemy (sqlite)",
            "database": "postgresql" if args.database_url else "sqlite",
        },
        "startup": startup,
        "shutdown": stopped,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    path = write_results(out_path, payload)
    print_report(payload)
    print(f"\nshutdown: {stopped}; {payload['elapsed_seconds']}s in all. Wrote {path}")
    return 1 if results["unexpected_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
