"""``descent predict`` against the real API (in process, on SQLite) with a job made to
look succeeded with a bundle: the table, ``-o out.csv``, ``--json``, stdin, the API's
refusal as a message and exit 1, and the client's ``predict`` methods."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from bundles import IRIS_FEATURES, IRIS_LABELS, finish_with_bundle, reference
from fastapi.testclient import TestClient
from support import Backend, bearer, make_user
from typer.testing import CliRunner

from service import client as client_module
from service.cli import app
from service.client import ApiError, Client
from service.main import create_app

runner = CliRunner()
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
CSV = "petal width (cm),sepal length (cm),sepal width (cm),petal length (cm)\n" + "".join(
    f"{r[3]},{r[0]},{r[1]},{r[2]}\n" for r in ROWS
)


@dataclass
class Api:
    client: Client
    job_id: str
    folder: Path


@pytest.fixture(scope="module")
def api(module_sqlite_backend: Backend) -> Iterator[Api]:
    settings = module_sqlite_backend.settings()
    token = make_user(module_sqlite_backend, "cli")
    with TestClient(create_app(settings), headers=bearer(token)) as server:
        r = server.post("/v1/jobs", json={"dataset": {"name": "iris"}})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        folder = finish_with_bundle(str(settings.database_url), settings.jobs_dir, job_id)
        # The client the CLI makes, sending its requests to the app in this process.
        client = Client("http://testserver", token, transport=server._transport)
        yield Api(client, job_id, folder)


@pytest.fixture
def cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    def from_config(url=None, token=None, config_path=None, **kw):  # noqa: ANN001, ANN003, ANN202
        return Client(api.client.url, api.client.token, transport=api.client._http._transport)

    monkeypatch.setattr(client_module.Client, "from_config", staticmethod(from_config))
    return api


def test_the_client_predicts_from_rows_and_from_csv(api: Api) -> None:
    expected = reference(api.folder, ROWS)
    by_rows = api.client.predict(api.job_id, ROWS)
    assert by_rows.labels == IRIS_LABELS and by_rows.feature_names == IRIS_FEATURES
    np.testing.assert_allclose(by_rows.probabilities, expected, atol=1e-6)
    named = [dict(zip(IRIS_FEATURES, r, strict=True)) for r in ROWS]
    assert api.client.predict(api.job_id, named) == by_rows
    assert api.client.predict_csv(api.job_id, CSV) == by_rows
    text = api.client.predict_csv(api.job_id, CSV, fmt="csv")
    assert text.splitlines()[0].startswith("prediction,probability_setosa")
    with pytest.raises(ApiError) as refused:
        api.client.predict(api.job_id, [[1.0, 2.0]])
    assert refused.value.status == 422 and "rows[0] has 2 values" in refused.value.message


def test_a_table_of_predictions(cli: Api, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text(CSV)
    result = runner.invoke(app, ["predict", cli.job_id, str(data)])
    assert result.exit_code == 0, result.output
    expected = reference(cli.folder, ROWS)
    lines = result.stdout.splitlines()
    assert "PREDICTION" in lines[0] and "P(setosa)" in lines[0]
    for line, probs in zip(lines[1:], expected, strict=True):
        assert IRIS_LABELS[int(np.argmax(probs))] in line
        assert f"{probs[0]:.4f}" in line
    assert "2 rows" in result.stderr


def test_predictions_written_as_csv(cli: Api, tmp_path: Path) -> None:
    data, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    data.write_text(CSV)
    result = runner.invoke(app, ["predict", cli.job_id, str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (2 predictions)" in result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "prediction," + ",".join(f"probability_{x}" for x in IRIS_LABELS)
    assert len(lines) == 3
    stdin = runner.invoke(app, ["predict", cli.job_id, "-", "-o", "-"], input=CSV)
    assert stdin.exit_code == 0, stdin.output
    assert stdin.stdout == out.read_text()


def test_json_and_extra_columns(cli: Api, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text(
        "".join(line + (",x\n" if n == 0 else ",9\n") for n, line in enumerate(CSV.splitlines()))
    )
    refused = runner.invoke(app, ["predict", cli.job_id, str(data)])
    assert refused.exit_code == 1
    assert "unknown columns 'x'" in refused.stderr
    ok = runner.invoke(app, ["predict", cli.job_id, str(data), "--ignore-extra", "--json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["n_rows"] == 2 and doc["labels"] == IRIS_LABELS


def test_a_bad_cell_and_a_missing_file(cli: Api, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text(CSV.replace("1.4", "abc", 1))
    result = runner.invoke(app, ["predict", cli.job_id, str(data)])
    assert result.exit_code == 1
    assert "line 2, column 'petal length (cm)': 'abc' is not a number" in result.stderr
    missing = runner.invoke(app, ["predict", cli.job_id, str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_help_says_what_it_takes() -> None:
    result = runner.invoke(app, ["predict", "--help"])
    assert result.exit_code == 0
    assert "header row naming every" in " ".join(result.stdout.split())
