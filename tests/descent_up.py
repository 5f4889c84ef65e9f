"""A `descent up` process of a test's own (the embedded default, as a user starts it), its
output in a file the test reads."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
from faults import free_port
from support import ROOT, wait_for


class Up:
    """One `descent up --data-dir data_dir` on a free port, its output in ``log``."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log = log
        self.base = f"http://127.0.0.1:{self.port}"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "up", "--port", str(self.port),
                 "--data-dir", str(data_dir)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def token(self) -> str:
        """The local admin's token, which `descent up` wrote at start."""
        return (self.data_dir / "token").read_text().strip()

    def wait_healthy(self, seconds: float = 90) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(healthy, seconds, what="descent up to answer /healthz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()[-3000:]}") from None

    def stop(self, timeout: float) -> int:
        """SIGTERM, as docker and systemd stop it; fails the test if it outlives ``timeout``."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"descent up did not stop:\n{self.output()[-3000:]}") from None
