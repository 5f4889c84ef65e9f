"""Every number in the job language is finite and bounded; names hold no control
characters."""

from __future__ import annotations

import json
import math
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from service.spec import JobSpec
from service.spec.common import SpecModel


def spec_models() -> list[type[SpecModel]]:
    found: list[type[SpecModel]] = []
    todo = list(SpecModel.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(set(found), key=lambda c: c.__qualname__)


def holds_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    return any(holds_float(arg) for arg in typing.get_args(annotation))


def tag_of(cls: type[BaseModel]) -> dict[str, Any]:
    """The discriminator a union member needs (``name`` or ``kind``), if any."""
    for key in ("name", "kind"):
        field = cls.model_fields.get(key)
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            return {key: typing.get_args(field.annotation)[0]}
    return {}


FLOAT_FIELDS = [
    (cls, name)
    for cls in spec_models()
    if not cls.__name__.startswith("_")
    for name, field in cls.model_fields.items()
    if holds_float(field.annotation)
]


def test_every_spec_model_forbids_non_finite_numbers() -> None:
    assert len(spec_models()) > 20
    for cls in spec_models():
        assert cls.model_config.get("allow_inf_nan") is False, cls


def test_the_float_fields_are_found() -> None:
    names = {f"{cls.__name__}.{name}" for cls, name in FLOAT_FIELDS}
    assert {"Adam.lr", "Adam.betas", "SGD.momentum", "MLPModel.dropout"} <= names
    assert {"OneCycle.max_lr", "Regularization.l2", "Training.time_limit_seconds"} <= names
    assert len(names) > 40


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("cls", "name"), FLOAT_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in FLOAT_FIELDS]
)
def test_every_float_field_refuses_nan_and_inf(cls: type[BaseModel], name: str, value: float):
    annotation = cls.model_fields[name].annotation
    origins = {typing.get_origin(annotation), *map(typing.get_origin, typing.get_args(annotation))}
    # A pair (betas) or a list (a sweep's choice) holds the bad number as an item.
    bad = [value, 0.5] if tuple in origins else [value] if list in origins else value
    with pytest.raises(ValidationError) as info:
        cls.model_validate({**tag_of(cls), name: bad})
    locs = [e["loc"] for e in info.value.errors()]
    assert any(loc[:1] == (name,) for loc in locs), locs
    assert any(e["type"] == "finite_number" for e in info.value.errors()), info.value


@pytest.mark.parametrize(
    "name",
    ["a\x00b", "line\nbreak", "tab\there", "bell\x07", "\x1b[31mred", "rtl\u202eoverride", "\x7f"],
)
def test_name_refuses_control_characters(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"name": name})
    (error,) = info.value.errors()
    assert error["loc"] == ("name",)
    assert "control character" in error["msg"]


@pytest.mark.parametrize(
    "name", ["digits-adam", "Käfer 3 (β=0.9)", "a" * 200, "数字 🙂", "x", "no\xa0break"]
)
def test_name_accepts_plain_labels(name: str) -> None:
    assert JobSpec.model_validate({"name": name}).name == name


@pytest.mark.parametrize("name", ["", "a" * 201])
def test_name_length(name: str) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"name": name})


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        # lr is a number or "auto": the number's error says where
        (
            {"optimizer": {"name": "sgd", "lr": True}},
            ("optimizer", "sgd", "lr", "constrained-float"),
        ),
        (
            {"optimizer": {"name": "sgd", "lr": "0.1"}},
            ("optimizer", "sgd", "lr", "constrained-float"),
        ),
        (
            {"optimizer": {"name": "adam", "betas": [0.9, "0.99"]}},
            ("optimizer", "adam", "betas", 1),
        ),
        ({"training": {"epochs": "10"}}, ("training", "epochs")),
        ({"training": {"seed": False}}, ("training", "seed")),
        ({"training": {"batch_size": True}}, ("training", "batch_size", "constrained-int")),
        ({"training": {"batch_size": "32"}}, ("training", "batch_size", "constrained-int")),
        ({"model": {"kind": "mlp", "hidden": [64, True]}}, ("model", "mlp", "hidden", 1)),
        (
            {"model": {"kind": "cnn", "input_shape": [1, "8", 8]}},
            ("model", "cnn", "input_shape", 1),
        ),
        ({"training": {"time_limit_seconds": "60"}}, ("training", "time_limit_seconds")),
        ({"model": {"kind": "mlp", "batch_norm": 1}}, ("model", "mlp", "batch_norm")),
        ({"model": {"kind": "mlp", "batch_norm": "yes"}}, ("model", "mlp", "batch_norm")),
        (
            {"regularization": {"early_stopping": {"restore_best_weights": 0}}},
            ("regularization", "early_stopping", "restore_best_weights"),
        ),
        (
            {"schedule": {"name": "one_cycle", "cycle_momentum": "false"}},
            ("schedule", "one_cycle", "cycle_momentum"),
        ),
    ],
)
def test_values_of_the_wrong_json_type(body: dict, loc: tuple) -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(body)
    assert loc in [e["loc"] for e in info.value.errors()]


def test_numbers_and_words_that_belong_are_kept() -> None:
    job = JobSpec.model_validate(
        {
            "optimizer": {"name": "adam", "lr": 1, "betas": [0.9, 0.99]},
            "training": {"batch_size": "full", "epochs": 20},
            "schedule": {"name": "one_cycle", "cycle_momentum": True},
        }
    )
    # A float field takes an integer, as a float.
    assert job.optimizer.lr == 1.0 and type(job.optimizer.lr) is float
    assert job.optimizer.betas == (0.9, 0.99)
    assert job.training.batch_size == "full" and job.training.epochs == 20


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"training": {"epochs": 20.0}}, ("training", "epochs")),
        ({"training": {"batch_size": 32.0}}, ("training", "batch_size", "constrained-int")),
        ({"model": {"kind": "mlp", "hidden": [64.0]}}, ("model", "mlp", "hidden", 0)),
        (
            {"schedule": {"name": "multistep", "milestones": [5.0]}},
            ("schedule", "multistep", "milestones", 0),
        ),
    ],
)
def test_an_integer_field_takes_no_float_not_even_a_whole_one(body: dict, loc: tuple) -> None:
    """The decision (docs/architecture.md, "The job spec is the contract"): pydantic's
    strict int, so ``2.0`` is refused like ``2.5``; lax mode took it as 2."""
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(body)
    errors = {e["loc"]: e for e in info.value.errors()}
    assert loc in errors, list(errors)
    assert errors[loc]["type"] == "int_type"
    assert errors[loc]["msg"] == "Input should be a valid integer"


def _every_member() -> list[dict[str, Any]]:
    from service.spec import DATASET_NAMES, MODEL_KINDS, OPTIMIZER_NAMES, SCHEDULE_NAMES

    bodies: list[dict[str, Any]] = [{}]
    bodies += [{"optimizer": {"name": n, "lr": "auto"}} for n in OPTIMIZER_NAMES]
    bodies += [{"schedule": {"name": n}} for n in SCHEDULE_NAMES]
    bodies += [{"model": {"kind": k}} for k in MODEL_KINDS]
    bodies += [{"dataset": {"name": n}} for n in DATASET_NAMES if n != "uploaded"]
    bodies.append({"dataset": {"name": "uploaded", "id": "abc"}})
    bodies.append(
        {
            "kind": "landscape",
            "landscape": {"job_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12},
            "model": {"kind": "cnn", "input_shape": [1, 8, 8]},
            "optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True},
            "regularization": {
                "early_stopping": {"patience": 3},
                "grad_clip": {"max_value": 1.0},
            },
            "training": {"batch_size": "full", "time_limit_seconds": 60},
        }
    )
    return bodies


@pytest.mark.parametrize("body", _every_member(), ids=lambda b: json.dumps(b)[:60])
def test_a_stored_spec_parses_again_as_the_same_spec(body: dict[str, Any]) -> None:
    """The worker re-parses the JSON the API stored with the same (strict) models: every
    number, boolean and pair in that JSON must pass them again."""
    spec = JobSpec.model_validate(body)
    stored = json.loads(json.dumps(spec.model_dump(mode="json")))
    assert JobSpec.model_validate(stored) == spec
