"""A client generated with openapi-python-client from the served API's own OpenAPI
document (docs/api-clients.md), used as a client author would: against a real uvicorn and
one real worker, it submits every example spec and the README's, follows a small job to
its end, and reads its metrics as JSON and CSV and its curves as PNG and SVG."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
from codegen import EXAMPLES, example_files, generate, load, module, readme_specs
from support import make_backend, make_user, serve, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.server]

#: About a second, start to end.
SMALL = {
    "name": "generated-client",
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"kind": "mlp", "hidden": [16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "training": {"epochs": 4, "batch_size": 32},
}
TERMINAL = {"succeeded", "failed", "cancelled", "diverged"}


@dataclass
class Generated:
    package: ModuleType
    client: Any  # the generated AuthenticatedClient

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """``sync_detailed`` of ``api.<operation>`` (``jobs.create_job``)."""
        return module(self.package, f"api.{operation}").sync_detailed(
            *args, client=self.client, **kwargs
        )

    def model(self, name: str) -> Any:
        return getattr(module(self.package, "models"), name)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    from service.main import create_app

    tmp = tmp_path_factory.mktemp("generated-client")
    backend = make_backend("sqlite", tmp)
    backend.env.update(DESCENT_CANCEL_POLL_SECONDS="0.2")
    token = make_user(backend, "codegen")
    worker = start_worker(backend, tmp / "worker.log")
    try:
        with serve(create_app(backend.settings())) as url:
            # The document as the server serves it, as a user's generator reads it.
            package, _ = generate(httpx.get(f"{url}/openapi.json", timeout=10).json())
            client = package.AuthenticatedClient(base_url=url, token=token, timeout=30.0)
            with client:
                yield Generated(package, client)
    finally:
        worker.stop()
        backend.close()


def test_the_generated_client_submits_follows_and_reads_a_job(generated: Generated) -> None:
    spec = generated.model("JobCreate").from_dict(SMALL)
    answer = generated.call("jobs.create_job", body=spec)
    assert answer.status_code == 202, answer.content
    job_id = answer.parsed.id
    assert answer.parsed.spec["optimizer"]["lr"] == 0.01

    def ended() -> Any:
        job = generated.call("jobs.get_job", job_id).parsed
        return job if job.status.value in TERMINAL else None

    job = wait_for(ended, 120, what="the job to end")
    assert job.status.value == "succeeded", job.status_reason
    assert job.epochs_completed == 4

    metrics = generated.call("jobs.job_metrics", job_id).parsed
    assert [row["epoch"] for row in metrics.to_dict()["epochs"]] == [1, 2, 3, 4]
    assert "val_loss" in metrics.names

    csv = generated.call("jobs.job_metrics_csv", job_id, names="train_loss,val_loss").parsed
    lines = csv.strip().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss"
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4"]

    png = generated.call("plots.job_plot_png", job_id).parsed
    assert png.payload.read().startswith(b"\x89PNG\r\n\x1a\n")
    svg = generated.call("plots.job_plot_svg", job_id).parsed
    assert "<svg" in svg and 'id="series-val_loss"' in svg


def test_the_generated_client_submits_every_example_spec(generated: Generated) -> None:
    """Each is accepted as written (the job then cancelled: the one above is what runs)."""
    job_create = generated.model("JobCreate")
    jobs = [(str(p.relative_to(EXAMPLES)), load(p)) for p in example_files("job")]
    jobs += [(f"README.md #{i}", s) for i, s in enumerate(readme_specs(), 1)]
    assert len(jobs) >= 30
    for where, spec in jobs:
        answer = generated.call("jobs.create_job", body=job_create.from_dict(spec))
        assert answer.status_code == 202, (where, answer.content)
        assert answer.parsed.name == spec.get("name", answer.parsed.name), where
        cancelled = generated.call("jobs.cancel_job", answer.parsed.id)
        assert cancelled.status_code == 202, (where, cancelled.content)

    sweeps = example_files("sweep")
    assert sweeps
    for path in sweeps:
        spec = load(path)
        if "configurations" in spec:
            body, operation = generated.model("ComparisonCreate"), "sweeps.create_comparison"
        else:
            body, operation = generated.model("SweepCreate"), "sweeps.create_sweep"
        answer = generated.call(operation, body=body.from_dict(spec))
        assert answer.status_code == 201, (path.name, answer.content)
        cancelled = generated.call("sweeps.cancel_sweep", answer.parsed.id)
        assert cancelled.status_code == 200, (path.name, cancelled.content)


def test_the_generated_client_reads_an_error_as_the_api_wrote_it(generated: Generated) -> None:
    spec = {**SMALL, "optimizer": {"name": "adam", "lr": "fast"}}
    # The model takes any string where the spec allows "auto"; the server says what is wrong.
    answer = generated.call("jobs.create_job", body=generated.model("JobCreate").from_dict(spec))
    assert answer.status_code == 422
    assert answer.parsed.error.code == "invalid_spec"
    assert any(f.field == "optimizer.lr" for f in answer.parsed.error.fields)
