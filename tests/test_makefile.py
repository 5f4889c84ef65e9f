"""`make up` as the README tells it: where it serves (PORT, HOST) and which torch build its
first run installs, read from make's dry run (`make -n`: nothing is installed or started)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import ROOT

from service.cli.server import client_url

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def dry_run(tmp_path: Path, *args: str) -> str:
    """What ``make -n ARGS`` would run, for a fresh checkout (a virtualenv not made yet)."""
    # Not the flags of a `make test` this suite may run under (-s would hide the commands).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", *args, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def test_make_up_serves_where_port_and_host_say(tmp_path: Path) -> None:
    assert "descent up --port 8000 --host 127.0.0.1\n" in dry_run(tmp_path, "up")
    out = dry_run(tmp_path, "up", "PORT=8123", "HOST=0.0.0.0")
    assert "descent up --port 8123 --host 0.0.0.0\n" in out


def test_the_first_run_says_which_torch_it_installs_and_how_to_choose(tmp_path: Path) -> None:
    out = dry_run(tmp_path, "install")
    assert "from PyPI: the CUDA build (GBs) on Linux x86_64, a CPU build elsewhere" in out
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in out
    assert "'a CPU build'" in out  # and afterwards which build it got
    cpu = "https://download.pytorch.org/whl/cpu"
    out = dry_run(tmp_path, "install", f"TORCH_INDEX={cpu}")
    assert f"installing torch==2.13.0 from {cpu}" in out
    assert f'pip install --quiet --index-url {cpu} "torch==' in out


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8123"),
        ("0.0.0.0", "http://127.0.0.1:8123"),
        ("::", "http://[::1]:8123"),
        ("[::1]", "http://[::1]:8123"),
        ("descent.example.org", "http://descent.example.org:8123"),
    ],
)
def test_descent_up_tells_clients_the_url_to_use(host: str, url: str) -> None:
    assert client_url(host, 8123) == url
