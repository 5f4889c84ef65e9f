"""The curl examples (examples/curl/) against a served API: an answer the API refuses shows
its error body — what was wrong, the field, what is allowed — on stderr, and the script
exits non-zero. (tests/integration/test_descent_up.py runs submit-and-wait.sh to the end.)"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, Backend, make_user, serve

pytestmark = pytest.mark.server

CURL = ROOT / "examples" / "curl"


@pytest.fixture(scope="module")
def served(module_sqlite_backend: Backend) -> Iterator[tuple[str, str]]:
    """A served API (no worker: nothing here runs) and a user's token."""
    from service.main import create_app

    token = make_user(module_sqlite_backend, "curl")
    with serve(create_app(module_sqlite_backend.settings())) as url:
        yield url, token


def run(script: str, *args: str, url: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(DESCENT_URL=url, DESCENT_TOKEN=token)
    return subprocess.run(
        ["bash", str(CURL / script), *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def error_of(stderr: str) -> dict:
    """The API's error body, as the script printed it (after its `HTTP <status>` line)."""
    first, _, body = stderr.partition("\n")
    assert first.startswith("HTTP "), stderr
    return json.loads(body)["error"]


def test_a_refused_spec_shows_the_field_and_what_is_allowed(
    served: tuple[str, str], tmp_path: Path
) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"dataset": {"name": "digits"}, "optimizer": {"name": "adamx"}}))
    out = run("submit-and-wait.sh", str(spec), url=served[0], token=served[1])
    assert out.returncode == 22, out
    assert out.stderr.startswith(f"HTTP 422 from {served[0]}:\n")
    error = error_of(out.stderr)
    assert error["code"] == "invalid_spec"
    (field,) = error["fields"]
    assert field["field"] == "optimizer.name" and "adam" in field["allowed"]
    assert "submitted job" not in out.stdout


def test_an_unknown_job_and_a_bad_token_show_the_api_message(served: tuple[str, str]) -> None:
    missing = str(uuid.uuid4())
    out = run("cancel.sh", missing, url=served[0], token=served[1])
    assert out.returncode == 22
    error = error_of(out.stderr)
    assert error["code"] == "not_found" and missing in error["message"]

    out = run("predict.sh", missing, url=served[0], token="dsc_not-a-token")
    assert out.returncode == 22
    assert error_of(out.stderr)["status"] == 401
    assert out.stdout == ""


def test_an_unreachable_server_is_curls_own_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run("cancel.sh", str(uuid.uuid4()), url=f"http://127.0.0.1:{port}", token="dsc_x")
    assert out.returncode == 7  # curl: failed to connect
    assert "curl: (7)" in out.stderr
