"""`descent job list --project/--filter/--tag`, `descent tag`, `descent note` and
`descent project …` against a fake API: what each sends and prints; and the default name
of a job submitted with --set overrides."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from cli_support import job_answer, page
from typer.testing import CliRunner

from service.cli import app
from service.cli.specfile import name_with_overrides

runner = CliRunner()
PROJECT = {"id": "p-1", "name": "vision", "created_at": "2026-01-01T10:00:00Z", "jobs": 3}


def test_list_turns_project_filter_and_tags_into_one_search(fake_api) -> None:  # noqa: ANN001
    seen = fake_api({("GET", "/v1/jobs"): page(job_answer(tags={"stage": "baseline"}))})
    result = runner.invoke(
        app,
        [
            "jobs",
            "--project",
            "vision",
            "--filter",
            "optimizer.lr < 0.01 or optimizer.lr = 'auto'",
            "--tag",
            "stage=it's",
            "--tag",
            "draft=",
            "--sort",
            "-saved.val_accuracy",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "LABELS" in result.output and "stage=baseline" in result.output
    params = seen[0].url.params
    assert params["project"] == "vision"
    assert params["sort"] == "-saved.val_accuracy"
    assert params["filter"] == (
        "(optimizer.lr < 0.01 or optimizer.lr = 'auto') and tags.stage = 'it''s' "
        "and tags.draft is null"
    )


def test_a_bad_tag_option_is_a_usage_error_before_any_request(fake_api) -> None:  # noqa: ANN001
    seen = fake_api({})
    result = runner.invoke(app, ["jobs", "--tag", "stage"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output
    assert seen == []


def test_tag_merges_sets_and_removals(fake_api) -> None:  # noqa: ANN001
    answer = job_answer(id="job-1", tags={"a": "1", "keep": "x"})
    seen = fake_api({("PATCH", "/v1/jobs/job-1"): answer})
    result = runner.invoke(app, ["tag", "job-1", "a=1", "b=", "--remove", "c"])
    assert result.exit_code == 0, result.output
    assert json.loads(seen[0].content) == {"merge_tags": {"a": "1", "b": None, "c": None}}
    assert "a=1  keep=x" in result.output
    assert runner.invoke(app, ["job", "tag", "job-1"]).exit_code == 2


def test_note_replaces_the_note(fake_api) -> None:  # noqa: ANN001
    seen = fake_api({("PATCH", "/v1/jobs/job-1"): job_answer(id="job-1", note="warm-up")})
    result = runner.invoke(app, ["note", "job-1", "warm-up"])
    assert result.exit_code == 0 and "note saved" in result.output
    assert json.loads(seen[0].content) == {"note": "warm-up"}


def test_projects_list_and_rename_by_name(fake_api) -> None:  # noqa: ANN001
    def renamed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**PROJECT, **json.loads(request.content), "sweeps": 1})

    seen = fake_api(
        {
            ("GET", "/v1/projects"): page({**PROJECT, "sweeps": 1}),
            ("PATCH", "/v1/projects/p-1"): renamed,
        }
    )
    listed = runner.invoke(app, ["projects"])
    assert listed.exit_code == 0 and "vision" in listed.output
    result = runner.invoke(app, ["project", "rename", "vision", "images"])
    assert result.exit_code == 0, result.output
    assert "renamed 'vision' to 'images'" in result.output
    assert json.loads(seen[-1].content) == {"name": "images"}
    missing = runner.invoke(app, ["project", "rename", "nope", "x"])
    assert missing.exit_code == 1 and "no project named 'nope'" in missing.output


def test_a_job_submitted_with_overrides_is_named_after_them(fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    spec = tmp_path / "job.yaml"
    spec.write_text("dataset: {name: digits}\n")
    seen = fake_api({("POST", "/v1/jobs"): job_answer(status="queued")})
    args = ["submit", str(spec), "--set", "optimizer.lr=0.01", "--set", "model.hidden=[64]"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(seen[0].content)["name"] == "digits-mlp-adam lr=0.01 hidden=[64]"
    # An explicit name wins; without overrides the server names it.
    runner.invoke(app, [*args, "--name", "mine"])
    assert json.loads(seen[1].content)["name"] == "mine"
    runner.invoke(app, ["submit", str(spec)])
    assert "name" not in json.loads(seen[2].content)


def test_override_names_say_what_differs() -> None:
    base = {"dataset": {"name": "iris"}, "optimizer": {"name": "sgd"}}
    assert name_with_overrides(base, ["optimizer.momentum=0.9"]) == "iris-mlp-sgd momentum=0.9"
    # A switched optimizer is in the default name already.
    assert name_with_overrides(base, ["optimizer.name=sgd"]) is None
    assert name_with_overrides({"dataset": {"name": "nope"}}, ["optimizer.lr=1"]) is None
