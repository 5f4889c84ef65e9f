"""``--set`` writes through the spec language's own writer (``service.spec.paths.apply``):
switching a union's tag drops the fields the new member lacks, as a sweep's trials do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from cli_support import job_answer
from typer.testing import CliRunner

from service.cli import app
from service.cli.specfile import SpecFileError, apply_set, apply_sweep_set, load_spec
from service.spec import JobSpec

SGD = {"dataset": {"name": "moons"}, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}}


def test_switching_the_optimizer_drops_what_the_new_one_lacks() -> None:
    spec = json.loads(json.dumps(SGD))
    apply_set(spec, "optimizer.name=adam")
    assert spec["optimizer"] == {"name": "adam", "lr": 0.1}
    JobSpec.model_validate(spec)  # what the API validates: no momentum on an Adam


def test_all_sets_are_written_together_tags_first() -> None:
    # Asked for an Adam with momentum: kept, so the API refuses it naming the field,
    # rather than silently dropped because the switch came second.
    spec = json.loads(json.dumps(SGD))
    apply_set(spec, "optimizer.momentum=0.5", "optimizer.name=adam")
    assert spec["optimizer"] == {"name": "adam", "lr": 0.1, "momentum": 0.5}
    # Fields the new member has survive the switch whichever way round.
    spec = {"optimizer": {"name": "adam", "betas": [0.8, 0.9]}}
    apply_set(spec, "optimizer.momentum=0.5", "optimizer.name=sgd", "optimizer.lr=0.2")
    assert spec["optimizer"] == {"name": "sgd", "momentum": 0.5, "lr": 0.2}


def test_a_later_set_of_the_same_path_wins() -> None:
    spec: dict = {}
    apply_set(spec, "training.epochs=3", "training.epochs=5")
    assert spec == {"training": {"epochs": 5}}


def test_a_sweeps_base_switches_its_optimizer_the_same_way() -> None:
    spec = {"base": json.loads(json.dumps(SGD)), "space": {}}
    apply_sweep_set(spec, "base.optimizer.name=adam", "max_trials=4", "sampler.seed=3")
    assert spec["base"]["optimizer"] == {"name": "adam", "lr": 0.1}
    assert (spec["max_trials"], spec["sampler"]) == (4, {"seed": 3})
    with pytest.raises(SpecFileError, match=r"'base.training.epochs.x=1': base.training.epochs"):
        apply_sweep_set({"base": {"training": {"epochs": 3}}}, "base.training.epochs.x=1")


def test_a_problem_is_a_usage_error_and_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read") as caught:
        load_spec(tmp_path / "missing.yaml")
    assert isinstance(caught.value, typer.BadParameter)


def test_submit_sends_the_switched_optimizer(fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    spec = tmp_path / "sgd.json"
    spec.write_text(json.dumps(SGD))
    seen = fake_api({("POST", "/v1/jobs"): job_answer(status="queued")})
    result = CliRunner().invoke(app, ["job", "submit", str(spec), "--set", "optimizer.name=adam"])
    assert result.exit_code == 0, result.output
    assert json.loads(seen[0].content)["optimizer"] == {"name": "adam", "lr": 0.1}


def test_lr_find_sends_a_range_test_without_the_auto_rate(fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    spec = tmp_path / "auto.yaml"
    spec.write_text("optimizer: {name: sgd, lr: auto, momentum: 0.9}\n")
    seen = fake_api({("POST", "/v1/jobs"): job_answer(kind="lr_range_test", status="queued")})
    result = CliRunner().invoke(
        app, ["lab", "lr-find", str(spec), "--set", "optimizer.name=adam", "--steps", "50"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(seen[0].content)
    assert body == {"optimizer": {"name": "adam"}, "kind": "lr_range_test",
                    "range_test": {"steps": 50}}  # fmt: skip
