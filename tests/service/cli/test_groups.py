"""The command tree: grouped commands, the flat names kept as hidden aliases (same
options, output and exit codes), and `descent sweep SPEC` handed to `sweep start`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from cli_support import flat, job_answer, page, sse, sweep_answer
from typer.testing import CliRunner

from service.cli import app
from service.cli.groups import FLAT_NAMES

runner = CliRunner()


def tree() -> Any:
    return typer.main.get_command(app)


def grouped_command(name: str) -> Any:
    group, sub = name.split()
    return tree().commands[group].commands[sub]


def params(command: Any) -> list[tuple[Any, ...]]:
    return [
        (p.name, tuple(p.opts), p.default, p.required, getattr(p, "multiple", False))
        for p in command.params
    ]


ALIASES = sorted((f, g) for g, f in FLAT_NAMES.items() if g != "sweep start")


@pytest.mark.parametrize(("flat", "grouped"), [*ALIASES, ("watch", "job follow")])
def test_every_flat_name_is_a_hidden_alias_with_the_same_options(flat: str, grouped: str) -> None:
    alias = tree().commands[flat]
    assert alias.hidden
    assert params(alias) == params(grouped_command(grouped))
    assert alias.help == grouped_command(grouped).help


def test_the_help_lists_the_groups_and_hides_the_flat_names() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    listed = set(re.findall(r"^│ (\S+)", result.stdout, re.M))
    assert {"job", "sweep", "lab", "catalog", "up", "api", "worker", "migrate", "db-check",
            "token", "admin"} <= listed  # fmt: skip
    assert not listed & {"submit", "jobs", "sweeps", "sweep-show", "lr-find", "watch"}


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "base: {dataset: {name: digits}}\nspace: {optimizer.lr: {uniform: [0.01, 0.1]}}\n"
    )
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "{spec}", "--set", "max_trials=2", "--json"],
        ["sweep", "--set", "max_trials=2", "{spec}", "--json"],
        ["sweep", "start", "{spec}", "--set", "max_trials=2", "--json"],
        ["sweep", "-", "--set", "max_trials=2", "--json"],
    ],
)
def test_sweep_spec_is_sweep_start_spec(fake_api, sweep_file: Path, args: list[str]) -> None:  # noqa: ANN001
    seen = fake_api({("POST", "/v1/sweeps"): sweep_answer(kind="sweep", status="running")})
    args = [a.replace("{spec}", str(sweep_file)) for a in args]
    result = runner.invoke(app, args, input=sweep_file.read_text())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "sweep-1"
    body = json.loads(seen[0].content)
    assert body["max_trials"] == 2 and body["space"] == {"optimizer.lr": {"uniform": [0.01, 0.1]}}


def test_a_misspelt_sweep_command_is_told_as_such_and_a_missing_file_as_such(fake_api) -> None:  # noqa: ANN001
    seen = fake_api({})
    result = runner.invoke(app, ["sweep", "shwo", "s1"])
    assert result.exit_code == 2
    assert "No such command 'shwo'. Did you mean 'show'?" in flat(result.stderr)
    result = runner.invoke(app, ["sweep", "nope.yaml"])
    assert result.exit_code == 2
    assert "cannot read nope.yaml" in flat(result.stderr)
    assert seen == []


def both(flat: list[str], grouped: list[str]) -> Iterator[Any]:
    for args in (flat, grouped):
        yield runner.invoke(app, args)


@pytest.mark.parametrize(
    ("flat", "grouped"),
    [
        (["show", "job-1"], ["job", "show", "job-1"]),
        (["jobs", "--json"], ["job", "list", "--json"]),
        (["result", "job-1"], ["job", "result", "job-1"]),
        (["sweep-show", "sweep-1", "--trials", "0"], ["sweep", "show", "sweep-1", "--trials", "0"]),
        (["sweeps"], ["sweep", "list"]),
        (["sweep-cancel", "sweep-1"], ["sweep", "cancel", "sweep-1"]),
        (["cancel", "nope"], ["job", "cancel", "nope"]),
        (["lab-plot", "job-1", "-o", "x.pdf"], ["lab", "plot", "job-1", "-o", "x.pdf"]),
    ],
)
def test_a_flat_name_and_its_group_print_the_same_and_exit_the_same(
    fake_api, flat: list[str], grouped: list[str]
) -> None:  # noqa: ANN001
    result = {"job_id": "job-1", "kind": "train", "status": "succeeded",
              "result": {"auto_lr": {"why": "the range test's valley"}}}  # fmt: skip
    fake_api(
        {
            ("GET", "/v1/jobs/job-1"): job_answer(),
            ("GET", "/v1/jobs"): page(job_answer()),
            ("GET", "/v1/jobs/job-1/result"): result,
            ("GET", "/v1/sweeps/sweep-1"): sweep_answer(),
            ("GET", "/v1/sweeps"): page(sweep_answer()),
            ("POST", "/v1/sweeps/sweep-1/cancel"): sweep_answer(status="cancelled"),
        }
    )
    a, b = both(flat, grouped)
    # A usage error names the command as it was typed.
    usage = a.stderr.replace(f"descent {flat[0]} ", f"descent {' '.join(grouped[:2])} ")
    assert (a.exit_code, a.stdout, usage) == (b.exit_code, b.stdout, b.stderr)
    assert a.stdout or a.exit_code  # each printed something, or failed


def test_interrupted_followers_suggest_commands_in_the_words_used(fake_api) -> None:  # noqa: ANN001
    def interrupted(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield sse(("sweep", 0, {"status": "running"})).encode()
            raise KeyboardInterrupt

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    for args, words in (
        (["sweep-follow", "sweep-1"], "`descent sweep-cancel sweep-1` cancels it"),
        (["sweep", "follow", "sweep-1"], "`descent sweep cancel sweep-1` cancels it"),
        (["follow", "job-1"], "`descent follow job-1` picks it up again"),
        (["job", "follow", "job-1"], "`descent job follow job-1` picks it up again"),
    ):
        fake_api(
            {
                ("GET", "/v1/sweeps/sweep-1"): sweep_answer(status="running"),
                ("GET", "/v1/sweeps/sweep-1/events"): interrupted,
                ("GET", "/v1/jobs/job-1"): job_answer(status="running"),
                ("GET", "/v1/jobs/job-1/events"): interrupted,
            }
        )
        result = runner.invoke(app, args)
        assert result.exit_code == 130, result.output
        assert words in result.stderr, result.stderr
