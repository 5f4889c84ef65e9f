"""The user commands against the real API (uvicorn on a SQLite database, no worker: jobs
stay queued): what they send is accepted, what they list prints as written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import flat
from typer.testing import CliRunner

from service.cli import app
from service.client import ApiError, Client

#: Serves the API with uvicorn (tests/support.py: serve).
pytestmark = pytest.mark.server

SGD = {
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"kind": "mlp", "hidden": [8]},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "training": {"epochs": 2},
}


class Live:
    def __init__(self, url: str, token: str, tmp: Path) -> None:
        self.url, self.token, self.tmp = url, token, tmp

    def cli(self, *args: str) -> Any:
        env = {"DESCENT_URL": self.url, "DESCENT_TOKEN": self.token, "DESCENT_CONFIG": "",
               "XDG_CONFIG_HOME": str(self.tmp / "xdg")}  # fmt: skip
        return CliRunner().invoke(app, list(args), env=env)

    def client(self) -> Client:
        return Client(self.url, self.token)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from support import make_backend, make_user, serve

    from service.main import create_app

    tmp = tmp_path_factory.mktemp("cli-live")
    backend = make_backend("sqlite", tmp)
    try:
        with serve(create_app(backend.settings())) as url:
            yield Live(url, make_user(backend, "cli-live"), tmp)
    finally:
        backend.close()


def test_switching_an_sgd_with_momentum_to_adam_is_accepted(live: Live, tmp_path: Path) -> None:
    spec = tmp_path / "sgd.json"
    spec.write_text(json.dumps(SGD))
    result = live.cli("submit", str(spec), "--set", "optimizer.name=adam", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["spec"]["optimizer"]["name"] == "adam"
    assert "momentum" not in job["spec"]["optimizer"] and job["spec"]["optimizer"]["lr"] == 0.05
    # What --set used to send: the API refuses an Adam with momentum.
    with live.client() as c, pytest.raises(ApiError) as refused:
        c.submit({**SGD, "optimizer": {**SGD["optimizer"], "name": "adam"}})
    assert refused.value.status == 422
    assert {f["field"] for f in refused.value.fields} >= {"optimizer.momentum"}


def test_setting_a_field_of_a_union_the_spec_left_out_is_accepted(
    live: Live, tmp_path: Path
) -> None:
    spec = tmp_path / "bare.yaml"
    spec.write_text("dataset: {name: moons, n_samples: 200}\ntraining: {epochs: 2}\n")
    result = live.cli("job", "submit", str(spec), "--set", "optimizer.lr=0.02", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spec"]["optimizer"]["lr"] == 0.02


def test_names_with_brackets_list_and_show_as_written(live: Live) -> None:
    names = ["try [/]", "digits [adam] /tmp"]
    with live.client() as c:
        ids = [c.submit({**SGD, "name": name}).id for name in names]
    result = live.cli("jobs", "--limit", "200")
    assert result.exit_code == 0, result.output
    for job_id, name in zip(ids, names, strict=True):
        row = next(line for line in result.stdout.splitlines() if line.startswith(job_id))
        assert f" {name} " in row, row
        shown = live.cli("job", "show", job_id)
        assert shown.exit_code == 0, shown.output
        assert f"name        {name}\n" in shown.stdout


def test_jobs_filter_by_kind(live: Live, tmp_path: Path) -> None:
    spec = tmp_path / "sgd.json"
    spec.write_text(json.dumps(SGD))
    trained = live.cli("job", "submit", str(spec)).stdout.strip()
    tested = live.cli("lab", "lr-find", str(spec), "--steps", "20").stdout.strip()
    assert trained and tested

    def listed(*kinds: str) -> list[dict[str, Any]]:
        args = [a for k in kinds for a in ("--kind", k)]
        result = live.cli("job", "list", *args, "--limit", "200", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["items"]

    assert {j["kind"] for j in listed("lr_range_test")} == {"lr_range_test"}
    assert tested in {j["id"] for j in listed("lr_range_test")}
    assert trained not in {j["id"] for j in listed("lr_range_test")}
    assert {trained, tested} <= {j["id"] for j in listed("train", "lr_range_test")}
    result = live.cli("job", "list", "--kind", "sweep")
    assert result.exit_code == 2
    assert "'sweep': choose one of train, lr_range_test, landscape" in flat(result.stderr)
