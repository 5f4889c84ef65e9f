"""The user commands without a server: spec files and --set, the follow display and its
exit codes (against an ``httpx.MockTransport`` that plays the API), usage errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from service import client as client_module
from service.cli import app
from service.cli.follow import outcome_lines
from service.cli.specfile import apply_set, load_spec, yaml_value
from service.jobs.schemas import JobRead

runner = CliRunner()


def flat(text: str) -> str:
    """Text without the boxes and line breaks of a rich usage error."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


# -- spec files and --set ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.01", 0.01),
        ("1e-3", 0.001),
        ("-2E+2", -200.0),
        ("32", 32),
        ("true", True),
        ("null", None),
        ("[64, 32]", [64, 32]),
        ("{monitor: val_loss, patience: 3}", {"monitor": "val_loss", "patience": 3}),
        ("adamw", "adamw"),
        ("full", "full"),
    ],
)
def test_set_values_are_yaml_with_exponents_as_numbers(text: str, value: object) -> None:
    assert yaml_value(text) == value


def test_set_creates_dicts_along_the_path_and_indexes_lists() -> None:
    spec: dict = {"dataset": {"name": "moons"}, "model": {"kind": "mlp", "hidden": [16, 8]}}
    apply_set(spec, "optimizer.lr=0.01")
    apply_set(spec, "regularization.early_stopping.patience=3")
    apply_set(spec, "model.hidden.1=4")
    apply_set(spec, "dataset.name = digits")
    assert spec == {
        "dataset": {"name": "digits"},
        "model": {"kind": "mlp", "hidden": [16, 4]},
        # The spec left the optimizer out: its default member is named, since the API
        # refuses an optimizer without its name (before --set went through the spec's
        # own writer, this sent {"lr": 0.01} and the job was refused).
        "optimizer": {"name": "adam", "lr": 0.01},
        "regularization": {"early_stopping": {"patience": 3}},
    }


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("optimizer.lr", "expected a dotted path, '=' and a value"),
        ("optimizer..lr=1", "expected a dotted path"),
        ("dataset.name.x=1", "dataset.name is \"moons\", not a mapping; cannot set 'x'"),
        ("model.hidden.5=1", "model.hidden is a list of 1; '5' is not an index"),
        ("model.hidden.x=1", "'x' is not an index"),
        ("optimizer.lr=[1", "the value is not YAML"),
    ],
)
def test_a_bad_set_is_a_usage_error(assignment: str, message: str) -> None:
    spec = {"dataset": {"name": "moons"}, "model": {"hidden": [16]}}
    with pytest.raises(typer.BadParameter, match=message.replace("[", r"\[")):
        apply_set(spec, assignment)


def test_specs_load_from_yaml_json_and_stdin(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    (tmp_path / "a.yaml").write_text("dataset:\n  name: moons\noptimizer: {lr: 1.0e-2}\n")
    (tmp_path / "b.json").write_text('{"dataset": {"name": "iris"}}')
    assert load_spec(str(tmp_path / "a.yaml")) == {
        "dataset": {"name": "moons"},
        "optimizer": {"lr": 0.01},
    }
    assert load_spec(str(tmp_path / "b.json")) == {"dataset": {"name": "iris"}}
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO('{"dataset": {"name": "wine"}}'))
    assert load_spec("-") == {"dataset": {"name": "wine"}}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(typer.BadParameter, match="must hold a mapping"):
        load_spec(str(tmp_path / "list.yaml"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(typer.BadParameter, match="not valid JSON or YAML"):
        load_spec(str(tmp_path / "bad.json"))
    with pytest.raises(typer.BadParameter, match="cannot read"):
        load_spec(str(tmp_path / "missing.yaml"))


# -- a fake API ------------------------------------------------------------------------------

JOB = {
    "id": "job-1",
    "name": "moons",
    "kind": "train",
    "status": "queued",
    "status_reason": None,
    "task": "classification",
    "spec": {"training": {"epochs": 3}, "regularization": {"early_stopping": None}},
    "dataset_id": None,
    "n_parameters": 226,
    "cancel_requested": False,
    "epochs": 3,
    "epochs_completed": 0,
    "attempt": 0,
    "best_epoch": None,
    "best_value": None,
    "final_metrics": None,
    "stop_epoch": None,
    "has_model": False,
    "created_at": "2026-01-01T09:59:59Z",
    "started_at": None,
    "finished_at": None,
    "links": {},
}


def events_text(final: str, reason: str | None, epochs: int = 3) -> str:
    out = ["retry: 2000\n\n", _sse("status", 0, {"status": "queued", "attempt": 0})]
    out.append(_sse("status", 0, {"status": "running", "attempt": 1, "epochs_completed": 0}))
    for n in range(1, epochs + 1):
        metrics = {"train_loss": 0.5 / n, "val_loss": 0.6 / n, "val_accuracy": 0.8, "lr": 0.01}
        out.append(_sse("epoch", n, {"epoch": n, "epochs": 3, "metrics": metrics}))
    out.append(": keep-alive\n\n")
    out.append(_sse("status", epochs, {"status": final, "status_reason": reason}))
    out.append(_sse("end", epochs, {"status": final, "status_reason": reason}))
    return "".join(out)


def _sse(event: str, event_id: int, data: dict) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


def final_job(status: str, reason: str | None, epochs: int = 3) -> dict:
    done = {
        "status": status,
        "status_reason": reason,
        "epochs_completed": epochs,
        "attempt": 1,
        "started_at": "2026-01-01T10:00:00Z",
        "finished_at": "2026-01-01T10:00:07.5Z",
    }
    if status == "succeeded":
        done |= {"best_epoch": 2, "best_value": 0.3, "final_metrics": {"val_accuracy": 0.8}}
    return {**JOB, **done}


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[httpx.Request]]:
    """Point the CLI at a fake API that runs a job to ``final`` (with ``reason``)."""

    def install(
        final: str = "succeeded", reason: str | None = None, body: Iterator[bytes] | None = None
    ) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            path = request.url.path
            if request.method == "POST" and path == "/v1/jobs":
                return httpx.Response(202, json=JOB)
            if path.endswith("/events"):
                stream = body if body is not None else iter([events_text(final, reason).encode()])
                return httpx.Response(
                    200, headers={"content-type": "text/event-stream"}, content=stream
                )
            return httpx.Response(200, json=final_job(final, reason))

        def from_config(url=None, token=None, config_path=None, **kw):  # noqa: ANN001, ANN003, ANN202
            return client_module.Client(
                url or "http://127.0.0.1:8000", token, transport=httpx.MockTransport(handler)
            )

        monkeypatch.setattr(client_module.Client, "from_config", staticmethod(from_config))
        return seen

    return install


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text("dataset: {name: moons}\ntraining: {epochs: 3}\n")
    return path


@pytest.mark.parametrize(
    ("final", "reason", "code"),
    [
        ("succeeded", None, 0),
        ("failed", "out of memory", 3),
        ("diverged", "non-finite train_loss at epoch 2", 4),
        ("cancelled", "cancelled by the user", 5),
    ],
)
def test_submit_follow_prints_a_line_per_epoch_and_exits_by_outcome(
    fake_api, spec_file: Path, final: str, reason: str | None, code: int
) -> None:  # noqa: ANN001
    seen = fake_api(final, reason)
    result = runner.invoke(app, ["submit", str(spec_file), "--set", "optimizer.lr=1e-3",
                                 "--name", "moons", "--follow"])  # fmt: skip
    assert result.exit_code == code, result.output
    assert json.loads(seen[0].content) == {
        "dataset": {"name": "moons"},
        "training": {"epochs": 3},
        "optimizer": {"name": "adam", "lr": 0.001},  # named: the API needs the name
        "name": "moons",
    }
    lines = result.stdout.splitlines()
    assert lines[0] == "job-1"
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert epoch_lines[0] == ("epoch 1/3  train_loss 0.5  val_loss 0.6  val_accuracy 0.8  lr 0.01")
    assert len(epoch_lines) == 3
    assert f"{final} after 3/3 epochs in 7.5s" in result.stdout
    if reason:
        assert f"reason: {reason}" in result.stdout
    else:
        assert "best epoch 2: val_loss 0.3" in result.stdout
        assert "final: val_accuracy 0.8" in result.stdout


def test_follow_with_json_prints_only_the_final_job_on_stdout(fake_api) -> None:  # noqa: ANN001
    fake_api("succeeded")
    result = runner.invoke(app, ["follow", "job-1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert "epoch 3/3" in result.stderr


def test_follow_on_a_terminal_draws_a_progress_bar(fake_api, monkeypatch) -> None:  # noqa: ANN001
    fake_api("diverged", "non-finite loss")
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = runner.invoke(app, ["follow", "job-1"])
    assert result.exit_code == 4, result.output
    assert "3/3" in result.stdout and "epochs" in result.stdout
    assert "reason: non-finite loss" in result.stdout


def test_ctrl_c_while_following_leaves_the_job_running(fake_api) -> None:  # noqa: ANN001
    def body() -> Iterator[bytes]:
        yield _sse("status", 0, {"status": "running", "attempt": 1}).encode()
        raise KeyboardInterrupt

    fake_api(body=body())
    result = runner.invoke(app, ["follow", "job-1"])
    assert result.exit_code == 130, result.output
    assert "job job-1 keeps running" in result.stderr
    assert "descent cancel job-1" in result.stderr


def test_outcome_lines_name_the_early_stop_and_the_monitor() -> None:
    job = final_job("succeeded", None) | {
        "stop_epoch": 3,
        "spec": {"regularization": {"early_stopping": {"monitor": "val_accuracy"}}},
    }
    assert outcome_lines(JobRead.model_validate(job))[0] == (
        "succeeded after 3/3 epochs in 7.5s (early stopping at epoch 3); "
        "best epoch 2: val_accuracy 0.3"
    )


# -- usage and connection errors -----------------------------------------------------------


def test_plot_needs_a_png_or_svg_file() -> None:
    result = runner.invoke(app, ["plot", "job-1", "-o", "curves.pdf"])
    assert result.exit_code == 2
    assert "curves.pdf: the file must end in .png or .svg" in flat(result.stderr)


def test_a_bad_set_exits_2_before_any_request(spec_file: Path) -> None:
    result = runner.invoke(app, ["submit", str(spec_file), "--set", "dataset.name.x=1",
                                 "--url", "http://127.0.0.1:9"])  # fmt: skip
    assert result.exit_code == 2
    assert 'dataset.name is "moons", not a mapping' in flat(result.stderr)


def test_an_unusable_config_file_exits_1(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("DESCENT_CONFIG", str(tmp_path / "nope.toml"))
    result = runner.invoke(app, ["jobs"])
    assert result.exit_code == 1
    assert "nope.toml does not exist" in result.stderr
