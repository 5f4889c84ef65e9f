"""`descent up`, as a user runs it: API, migrations and a supervised worker in one command."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from descent_up import Up
from faults import FAST_RECOVERY_ENV
from support import COMMON_ENV, ROOT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.server]

JOB = {
    "dataset": {"name": "iris"},
    "model": {"kind": "mlp", "hidden": [8]},
    "training": {"epochs": 3, "batch_size": 16},
}


#: Long enough (about a second an epoch) to be killed in the middle of.
LONG_JOB = {
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [256, 256]},
    "training": {"epochs": 12, "batch_size": 8},
}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def check_metrics(base: str, headers: dict[str, str]) -> None:
    """Acceptance 1 of issue 17: with a job running, one scrape of the API's /metrics (an
    admin's token) shows the job gauges, the workers' epoch histogram and the queue depth,
    and they move: a job submitted shows in the queue, the epochs go on."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, frozenset], float]:
        r = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
        }

    epochs = ("descent_worker_epoch_duration_seconds_count", frozenset())
    before = scrape()
    assert before[("descent_jobs", frozenset({("status", "running"), ("kind", "train")}))] == 1
    assert before[("descent_worker_jobs_running", frozenset())] == 1
    assert before[epochs] >= 2
    assert before[("descent_queue_depth", frozenset({("queue", "descent")}))] == 0
    r = httpx.post(f"{base}/v1/jobs", json=JOB, headers=headers, timeout=10)
    assert r.status_code == 202, r.text
    waiting = scrape()  # the one worker is busy: the new job waits in the broker
    assert waiting[("descent_queue_depth", frozenset({("queue", "descent")}))] == 1
    assert waiting[("descent_jobs", frozenset({("status", "queued"), ("kind", "train")}))] == 1
    httpx.post(f"{r.headers['location']}/cancel", headers=headers, timeout=10)
    wait_for(lambda: scrape()[epochs] > before[epochs], 30, what="the epoch histogram to move")


def fleet_cli(env: dict[str, str]) -> list[dict]:
    """The workers ``descent workers --json`` lists, through the API of ``env``'s
    DESCENT_URL."""
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "workers", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)["workers"]


def check_fleet(data_dir: Path, pid: int, state: str, job_id: str | None = None) -> bool:
    """Whether the ``workers`` table shows the worker whose main process is ``pid`` in
    ``state`` (``lost`` derived as every reader derives it), training on the CPU, and
    running ``job_id`` when one is given."""
    from service.db import make_engine, make_sessionmaker, utcnow
    from service.fleet.liveness import state_of
    from service.fleet.models import Worker

    engine = make_engine(f"sqlite:///{data_dir / 'descent.sqlite'}")
    try:
        with make_sessionmaker(engine)() as s:
            row = s.get(Worker, f"{socket.gethostname()}:{pid}")
    finally:
        engine.dispose()
    lease = float(FAST_RECOVERY_ENV["DESCENT_LEASE_SECONDS"])
    return (
        row is not None
        and state_of(row, utcnow(), lease) == state
        and row.devices == [{"name": "cpu", "kind": "cpu"}]
        and (job_id is None or job_id in (row.running or []))
    )


def test_descent_up_serves_trains_and_restarts_a_dead_worker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    # Short leases, so the lost worker's job is noticed in seconds rather than 30.
    env.update(COMMON_ENV, PYTHONUNBUFFERED="1", **FAST_RECOVERY_ENV)
    data_dir = tmp_path / "data"
    up = Up(data_dir, tmp_path / "up.log", env)
    base, output = up.base, up.output

    headers: dict[str, str] = {}

    def run_job() -> dict:
        r = httpx.post(f"{base}/v1/jobs", json=JOB, headers=headers, timeout=10)
        assert r.status_code == 202, r.text
        url = r.headers["location"]

        def done() -> dict | None:
            job = httpx.get(url, headers=headers, timeout=5).json()
            return job if job["status"] not in ("queued", "running") else None

        try:
            return wait_for(done, 90, what="the job to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{output()[-3000:]}") from None

    try:
        up.wait_healthy()
        assert f"export DESCENT_URL={base}" in output()  # what clients are told to use
        # Ready once its supervised worker is (DESCENT_READY_NEEDS_WORKER, set by `up`).
        wait_for(
            lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200,
            60,
            what="/readyz",
        )
        # Migrations ran and the embedded files are where the docs say.
        assert (data_dir / "descent.sqlite").is_file()
        assert (data_dir / "broker.sqlite").is_file()
        # First start: a local admin and its token, readable by its owner only.
        token_file = data_dir / "token"
        token = token_file.read_text().strip()
        assert token.startswith("dsc_")
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        private = [stat.S_IMODE((data_dir / n).stat().st_mode) for n in ("", "descent.sqlite")]
        assert private == [0o700, 0o600]  # as every other file of the data dir
        assert str(token_file.resolve()) in output() and "`descent token`" in output()
        printed = subprocess.run(
            [sys.executable, "-m", "service.cli", "token"], cwd=ROOT,
            env={**env, "DESCENT_DATA_DIR": str(data_dir)},
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        assert printed == token
        r = httpx.get(f"{base}/v1/jobs", timeout=5)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        headers["Authorization"] = f"Bearer {token}"
        me = httpx.get(f"{base}/v1/me", headers=headers, timeout=5).json()
        assert (me["name"], me["role"]) == ("admin", "admin")
        assert run_job()["status"] == "succeeded"
        assert (data_dir / "artifacts" / "jobs").is_dir()

        # The README's curl round trip: submit, poll, metrics as CSV.
        spec = tmp_path / "small.json"
        spec.write_text(json.dumps(JOB))
        script = ROOT / "examples" / "curl" / "submit-and-wait.sh"
        out = subprocess.run(
            ["bash", str(script), str(spec)],
            env={**env, "DESCENT_URL": base, "DESCENT_TOKEN": token},
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        assert "status: succeeded 3" in out
        csv_lines = out.strip().splitlines()[-4:]
        assert csv_lines[0].startswith("epoch,train_loss,val_loss,train_accuracy")
        assert [line.split(",")[0] for line in csv_lines[1:]] == ["1", "2", "3"]

        # Kill the worker in the middle of a job: the supervisor starts a new one, whose
        # reaper finds the job's lease expired and resumes it from its checkpoint.
        r = httpx.post(f"{base}/v1/jobs", json=LONG_JOB, headers=headers, timeout=10)
        assert r.status_code == 202, r.text
        url = r.headers["location"]
        wait_for(
            lambda: httpx.get(url, headers=headers, timeout=5).json()["epochs_completed"] >= 2,
            60,
            what="two epochs of the long job",
        )
        check_metrics(base, headers)
        (first_pid,) = map(int, re.findall(r"worker 0 started \(pid (\d+)\)", output()))
        job_id = url.rsplit("/", 1)[-1]
        wait_for(lambda: check_fleet(data_dir, first_pid, "ready", job_id), 10, what="fleet")
        # What an operator sees: `descent workers` lists it with its device and its job.
        cli_env = {**env, "DESCENT_URL": base, "DESCENT_TOKEN": token}
        (shown,) = fleet_cli(cli_env)
        assert (shown["pid"], shown["state"], shown["devices"][0]["name"]) == (
            first_pid,
            "ready",
            "cpu",
        )
        assert [j["id"] for j in shown["running"]] == [job_id] and shown["torch_threads"] >= 1
        os.kill(first_pid, signal.SIGKILL)
        wait_for(
            lambda: len(re.findall(r"worker 0 started", output())) == 2,
            30,
            what="the supervisor to restart the worker",
        )
        second_pid = int(re.findall(r"worker 0 started \(pid (\d+)\)", output())[-1])
        wait_for(
            lambda: (
                check_fleet(data_dir, first_pid, "lost")
                and check_fleet(data_dir, second_pid, "ready")
            ),
            30,
            what="the killed worker lost, its successor ready",
        )
        states = {w["pid"]: w["state"] for w in fleet_cli(cli_env)}
        assert states == {first_pid: "lost", second_pid: "ready"}
        job = wait_for(
            lambda: (
                (j := httpx.get(url, headers=headers, timeout=5).json())["status"]
                not in ("queued", "running")
                and j
            ),
            120,
            what="the long job to finish",
        )
        assert job["status"] == "succeeded", (job["status_reason"], output()[-3000:])
        epochs = httpx.get(f"{url}/metrics", headers=headers, timeout=5).json()["epochs"]
        assert [e["epoch"] for e in epochs] == list(range(1, LONG_JOB["training"]["epochs"] + 1))
        attempts = httpx.get(f"{url}/attempts", headers=headers, timeout=5).json()
        assert [a["outcome"] for a in attempts] == ["lost", "succeeded"]
        assert attempts[1]["resumed_from_epoch"] >= 2
        assert run_job()["status"] == "succeeded"
    finally:
        # SIGTERM, as docker and systemd stop it (Ctrl-C's SIGINT takes the same path).
        up.stop(30)
    pids = [int(p) for p in re.findall(r"worker 0 started \(pid (\d+)\)", output())]
    time.sleep(0.5)
    assert not any(pid_alive(p) for p in pids), "worker processes outlived descent up"
    assert check_fleet(data_dir, pids[-1], "stopped")  # it said so as it shut down


def test_descent_up_refuses_to_listen_beyond_loopback_without_auth(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(DESCENT_AUTH="none", DESCENT_DATA_DIR=str(tmp_path / "data"))
    cmd = [sys.executable, "-m", "service.cli", "up", "--host", "0.0.0.0", "--port", "8000"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "refusing to listen on '0.0.0.0' with DESCENT_AUTH=none" in out.stderr
    assert "DESCENT_AUTH=token" in out.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything
