"""What users and the server chose — job names, labels, reasons, parameter values — is
printed as written: rich must never read it as markup (``try [/]`` made ``descent jobs``
crash with a MarkupError, ``digits [adam] /tmp`` printed as ``digits  /tmp``, and a
comparison's ``trial 2 [adam]: …`` lost its label)."""

from __future__ import annotations

import re

import pytest
from cli_support import job_answer, page, sse, sweep_answer
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()
NAMES = ["try [/]", "digits [adam] /tmp", "[bold]loud[/bold]", "[link=http://x]x"]


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


@pytest.mark.parametrize("command", [["jobs"], ["job", "list"]])
@pytest.mark.parametrize("terminal", [False, True])
def test_job_names_with_brackets_list_as_written(
    fake_api, monkeypatch, command: list[str], terminal: bool
) -> None:  # noqa: ANN001
    if terminal:
        monkeypatch.setenv("FORCE_COLOR", "1")
    jobs = [job_answer(id=f"job-{i}", name=name) for i, name in enumerate(NAMES)]
    fake_api({("GET", "/v1/jobs"): page(*jobs)})
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    for i, name in enumerate(NAMES):
        row = next(line for line in out.splitlines() if line.startswith(f"job-{i}"))
        assert f" {name} " in row, row


def comparison_events(label: str, reason: str) -> str:
    def trial(number: int, status: str, state: str, **extra: object) -> dict:
        return {"trial": number, "label": [label, "adam"][number], "trial_state": state,
                "job_id": f"j{number}", "repeat": 0, "status": status, "params": {},
                "epochs_completed": 3, **extra}  # fmt: skip

    return sse(
        ("sweep", 0, {"status": "running", "trials_created": 2}),
        ("trial", 0, trial(0, "running", "running")),
        ("trial", 0, trial(1, "running", "running")),
        ("trial", 0, trial(0, "failed", "failed", status_reason=reason)),
        ("trial", 0, trial(1, "succeeded", "complete", objective=0.95)),
        ("sweep", 0, {"status": "succeeded", "trials_created": 2}),
        ("end", 0, {"status": "succeeded"}),
    )


def test_comparison_lines_keep_their_configuration_labels(fake_api) -> None:  # noqa: ANN001
    best = {"number": 1, "label": "adam", "params": {}, "value": 0.95, "job_ids": ["j1"]}
    final = sweep_answer(counts={"complete": 1, "failed": 1}, best=best, trials_created=2)
    fake_api(
        {
            ("GET", "/v1/sweeps/sweep-1"): final,
            ("GET", "/v1/sweeps/sweep-1/events"): comparison_events("sgd [lr 0.1]", "x [/] y"),
        }
    )
    result = runner.invoke(app, ["sweep", "follow", "sweep-1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("trial")] == [
        "trial 0 [sgd [lr 0.1]]: running",
        "trial 1 [adam]: running",
        "trial 0 [sgd [lr 0.1]]: failed after 3 epochs (x [/] y)",
        "trial 1 [adam]: succeeded after 3 epochs, val_accuracy 0.95",
    ]
    assert lines[-1] == "best: trial 1 (adam): val_accuracy 0.95"


def test_the_live_table_shows_labels_with_brackets(fake_api, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("FORCE_COLOR", "1")
    fake_api(
        {
            ("GET", "/v1/sweeps/sweep-1"): sweep_answer(),
            ("GET", "/v1/sweeps/sweep-1/events"): comparison_events("[/]", "r"),
        }
    )
    result = runner.invoke(app, ["sweep", "follow", "sweep-1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"0\s+failed\s+\[/\]", plain(result.stdout)), result.stdout


def test_a_reason_with_brackets_is_told_as_written(fake_api) -> None:  # noqa: ANN001
    reason = "loss [nan] at step 3 [/]"
    fake_api(
        {
            ("GET", "/v1/jobs/job-1"): job_answer(status="diverged", status_reason=reason),
            ("GET", "/v1/jobs/job-1/events"): sse(
                ("status", 0, {"status": "running", "attempt": 1}),
                ("end", 0, {"status": "diverged", "status_reason": reason}),
            ),
        }
    )
    result = runner.invoke(app, ["job", "follow", "job-1"])
    assert result.exit_code == 4, result.output
    assert f"reason: {reason}" in result.stdout.splitlines()


def test_sweep_show_prints_labels_and_string_values_as_written(fake_api) -> None:  # noqa: ANN001
    trial = {"number": 0, "state": "complete", "label": "a [b]", "params": {}, "value": 0.9,
             "epochs": 3, "jobs": []}  # fmt: skip
    stats = {
        "metric": "val_accuracy",
        "direction": "max",
        "seeds": [0, 1],
        "configurations": [
            {
                "number": 0,
                "label": "a [b]",
                "params": {},
                "state": "complete",
                "n": 2,
                "mean": 0.9,
                "values": {},
            }
        ],  # fmt: skip
        "best": 0,
        "tests": [],
    }
    fake_api(
        {
            ("GET", "/v1/sweeps/sweep-1"): sweep_answer(name="[red]x", repeats=2),
            ("GET", "/v1/sweeps/sweep-1/trials"): page(trial),
            ("GET", "/v1/sweeps/sweep-1/comparison"): stats,
        }
    )
    result = runner.invoke(app, ["sweep", "show", "sweep-1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^name\s+\[red\]x$", result.stdout, re.M), result.stdout
    assert re.search(r"^0\s+complete\s+a \[b\]\s+0\.9\s+3$", result.stdout, re.M), result.stdout
    assert re.search(r"^0\s+a \[b\] \(best\)\s+2", result.stdout, re.M), result.stdout


def test_catalog_descriptions_are_not_markup(fake_api) -> None:  # noqa: ANN001
    item = {"name": "moons", "task": "classification", "description": "[i]two[/i] moons [/]",
            "params": [{"name": "noise", "default": 0.1}]}  # fmt: skip
    fake_api({("GET", "/v1/catalog"): {"datasets": [item], "limits": {"max_epochs": 1000}}})
    result = runner.invoke(app, ["catalog"])
    assert result.exit_code == 0, result.output
    assert "[i]two[/i] moons [/]" in result.stdout
    assert "noise=0.1" in result.stdout and "max_epochs 1000" in result.stdout
