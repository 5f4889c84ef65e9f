"""openapi-python-client reads the whole OpenAPI document, and the client it generates
takes every example spec as written: its models parse each one and send it back unchanged.
(tests/integration/test_generated_client.py uses that client against a served API.)"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from codegen import EXAMPLES, example_files, generate, load, module, readme_specs
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def generated(module_sqlite_backend) -> tuple[Any, str]:  # noqa: ANN001
    from service.main import create_app

    return generate(create_app(module_sqlite_backend.settings()).openapi())


def test_the_generator_reads_every_response_and_names_methods_by_operation(generated) -> None:  # noqa: ANN001
    package, output = generated
    # Every response is read (images, CSV and files too), and no model is dropped.
    assert "Cannot parse response" not in output, output
    assert "Unable to" not in output, output
    jobs = ("create_job", "list_jobs", "get_job", "cancel_job", "job_metrics", "job_metrics_csv")
    for name in jobs:
        assert callable(module(package, f"api.jobs.{name}").sync_detailed)
    for name in ("job_plot_png", "job_plot_svg", "compare_png"):
        assert callable(module(package, f"api.plots.{name}").sync)


def _model(path: Path, spec: dict[str, Any]) -> str:
    if path.parent.name == "playground":
        return "PlaygroundRequest"
    if path.parent.name == "sweeps":
        return "ComparisonCreate" if "configurations" in spec else "SweepCreate"
    return "JobCreate"


EVERY_EXAMPLE = [*example_files("job"), *example_files("sweep"), *example_files("playground")]


@pytest.mark.parametrize("path", EVERY_EXAMPLE, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_the_generated_models_take_every_example_as_written(generated, path: Path) -> None:  # noqa: ANN001
    models = module(generated[0], "models")
    spec = load(path)
    parsed = getattr(models, _model(path, spec)).from_dict(spec)
    assert parsed.to_dict() == spec


def test_the_generated_models_take_the_readme_specs(generated) -> None:  # noqa: ANN001
    models = module(generated[0], "models")
    specs = readme_specs()
    assert specs, "README.md shows a job spec"
    for spec in specs:
        assert models.JobCreate.from_dict(spec).to_dict() == spec


def test_the_generated_client_reads_the_api_error_body(generated, api: TestClient) -> None:  # noqa: ANN001
    package, _ = generated
    client = package.AuthenticatedClient(base_url=str(api.base_url), token="unused")
    client.set_httpx_client(api)  # the in-process app, with its own token
    missing = str(uuid.uuid4())
    answer = module(package, "api.jobs.get_job").sync_detailed(missing, client=client)
    assert answer.status_code == 404
    assert answer.parsed.error.code == "not_found"
    assert missing in answer.parsed.error.message
    answer = module(package, "api.jobs.get_job").sync_detailed("not-an-id", client=client)
    assert answer.status_code == 422
    assert answer.parsed.error.fields[0].field == "job_id"
