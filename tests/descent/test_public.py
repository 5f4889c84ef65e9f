"""``descent``, the import surface for scripts: a script that knows only it submits a job
to a real API (uvicorn on SQLite, no worker), reads it back typed, and cancels it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Serves the API with uvicorn (tests/support.py: serve).
pytestmark = pytest.mark.server

SCRIPT = """
import sys
from descent import ApiError, Client, JobRead, JobSpec, JobStatus, load_spec

url, token, spec_file = sys.argv[1:]
with Client(url, token) as api:
    job = api.submit(load_spec(spec_file))
    assert isinstance(job, JobRead) and job.status == JobStatus.QUEUED, job
    spec = JobSpec.model_validate({"dataset": {"name": "iris"}, "training": {"epochs": 2}})
    other = api.submit(spec)
    assert other.spec["dataset"]["name"] == "iris" and other.epochs == 2, other
    assert {job.id, other.id} <= {j.id for j in api.iter_jobs()}
    assert api.job(job.id).name == "from a script"
    assert api.cancel(job.id).status == JobStatus.CANCELLED
    try:
        api.submit({"optimizer": {"name": "adamx"}})
    except ApiError as err:
        print(err.status, [f["field"] for f in err.fields])
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from support import make_backend, make_user, serve

    from service.main import create_app

    backend = make_backend("sqlite", tmp_path_factory.mktemp("descent"))
    try:
        with serve(create_app(backend.settings())) as url:
            yield url, make_user(backend, "scripter")
    finally:
        backend.close()


def test_a_script_submits_reads_and_cancels_through_descent(
    api: tuple[str, str], tmp_path: Path
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: from a script\ndataset: {name: moons}\ntraining: {epochs: 2}\n")
    # A process of its own, as a script runs: only what `descent` imports is loaded.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *api, str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "422 ['optimizer.name']"


def test_from_descent_import_client_in_process(api: tuple[str, str]) -> None:
    from descent import Client, JobPage

    url, token = api
    with Client(url, token) as client:
        page = client.jobs(limit=1)
    assert isinstance(page, JobPage) and page.limit == 1
