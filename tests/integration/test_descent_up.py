"""`descent up`, as a user runs it: API, migrations and a supervised worker in one command."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import COMMON_ENV, ROOT, wait_for

pytestmark = pytest.mark.integration

JOB = {
    "dataset": {"name": "iris"},
    "model": {"kind": "mlp", "hidden": [8]},
    "training": {"epochs": 3, "batch_size": 16},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_descent_up_serves_trains_and_restarts_a_dead_worker(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(COMMON_ENV, PYTHONUNBUFFERED="1")
    data_dir = tmp_path / "data"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "up", "--port", str(port),
             "--data-dir", str(data_dir)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        return log_path.read_text(errors="replace")

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def run_job() -> dict:
        r = httpx.post(f"{base}/v1/jobs", json=JOB, timeout=10)
        assert r.status_code == 202, r.text
        url = r.headers["location"]

        def done() -> dict | None:
            job = httpx.get(url, timeout=5).json()
            return job if job["status"] not in ("queued", "running") else None

        try:
            return wait_for(done, 90, what="the job to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{output()[-3000:]}") from None

    try:
        wait_for(healthy, 60, what="descent up to answer /healthz")
        # Migrations ran and the embedded files are where the docs say.
        assert (data_dir / "descent.sqlite").is_file()
        assert (data_dir / "broker.sqlite").is_file()
        assert run_job()["status"] == "succeeded"
        assert (data_dir / "artifacts" / "jobs").is_dir()

        # The README's curl round trip: submit, poll, metrics as CSV.
        spec = tmp_path / "small.json"
        spec.write_text(json.dumps(JOB))
        script = ROOT / "examples" / "curl" / "submit-and-wait.sh"
        out = subprocess.run(
            ["bash", str(script), str(spec)], env={**env, "DESCENT_URL": base},
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        assert "status: succeeded 3" in out
        csv_lines = out.strip().splitlines()[-4:]
        assert csv_lines[0].startswith("epoch,train_loss,val_loss,train_accuracy")
        assert [line.split(",")[0] for line in csv_lines[1:]] == ["1", "2", "3"]

        (first_pid,) = map(int, re.findall(r"worker 0 started \(pid (\d+)\)", output()))
        os.kill(first_pid, signal.SIGKILL)
        wait_for(
            lambda: len(re.findall(r"worker 0 started", output())) == 2,
            30,
            what="the supervisor to restart the worker",
        )
        assert run_job()["status"] == "succeeded"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"descent up did not stop:\n{output()[-3000:]}") from None
    pids = [int(p) for p in re.findall(r"worker 0 started \(pid (\d+)\)", output())]
    time.sleep(0.5)
    assert not any(pid_alive(p) for p in pids), "worker processes outlived descent up"
