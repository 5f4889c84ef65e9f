"""Legend labels from what differs between job specs (service.plots.labels)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from service.plots.labels import format_value, spec_labels
from service.spec import JobSpec


def spec(**sections: Any) -> dict[str, Any]:
    """A stored spec, as the API keeps it: every default filled in."""
    sections.setdefault("dataset", {"name": "iris"})
    return JobSpec.model_validate(sections).model_dump(mode="json")


def labels(*specs: dict[str, Any], names: list[str] | None = None) -> list[str]:
    ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(len(specs))]
    return spec_labels(specs, names=names or [f"job{i}" for i in range(len(specs))], ids=ids)


# -- a section whose variant differs ---------------------------------------------------


def test_nine_optimizers() -> None:
    got = labels(
        spec(optimizer={"name": "sgd"}),
        spec(optimizer={"name": "sgd", "momentum": 0.9}),
        spec(optimizer={"name": "sgd", "momentum": 0.9, "nesterov": True}),
        spec(optimizer={"name": "adagrad"}),
        spec(optimizer={"name": "rmsprop"}),
        spec(optimizer={"name": "adam"}),
        spec(optimizer={"name": "adamw"}),
        spec(optimizer={"name": "nadam"}),
        spec(optimizer={"name": "adamax"}),
    )
    assert got == [
        "sgd",
        "sgd momentum=0.9",
        "sgd momentum=0.9 nesterov=on",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
        "nadam",
        "adamax",
    ]
    assert len(set(got)) == len(got)


def test_the_issues_example() -> None:
    got = labels(
        spec(optimizer={"name": "adam", "lr": 1e-3}),
        spec(optimizer={"name": "sgd", "momentum": 0.9}),
    )
    assert got == ["adam", "sgd momentum=0.9"]  # 0.001 is adam's default lr


def test_a_parameter_that_differs_within_a_variant_shows_on_each_of_its_jobs() -> None:
    got = labels(
        spec(optimizer={"name": "adam", "lr": 1e-3}),
        spec(optimizer={"name": "adam", "lr": 1e-2}),
        spec(optimizer={"name": "sgd"}),
    )
    assert got == ["adam lr=0.001", "adam lr=0.01", "sgd"]


def test_a_non_default_shared_by_every_job_is_left_out() -> None:
    got = labels(
        spec(optimizer={"name": "adam", "weight_decay": 1e-4}),
        spec(optimizer={"name": "sgd", "weight_decay": 1e-4, "momentum": 0.9}),
    )
    assert got == ["adam", "sgd momentum=0.9"]


def test_a_variant_default_is_not_a_difference() -> None:
    # adamw's weight_decay default is 0.01, the others' 0: each at its own default.
    assert labels(spec(optimizer={"name": "adamw"}), spec(optimizer={"name": "adam"})) == [
        "adamw",
        "adam",
    ]
    got = labels(
        spec(optimizer={"name": "adamw", "weight_decay": 0.0}),
        spec(optimizer={"name": "adam", "weight_decay": 0.01}),
    )
    assert got == ["adamw weight_decay=0", "adam weight_decay=0.01"]


def test_models_and_schedules() -> None:
    got = labels(
        spec(model={"kind": "linear"}),
        spec(model={"kind": "mlp", "hidden": [128, 64], "dropout": 0.5}),
        spec(model={"kind": "cnn", "channels": [8]}),
    )
    assert got == ["linear", "mlp hidden=[128,64] dropout=0.5", "cnn channels=[8]"]
    got = labels(
        spec(schedule={"name": "one_cycle", "max_lr": 0.1}),
        spec(schedule={"name": "cosine", "warmup_epochs": 2}),
        spec(schedule={"name": "step", "step_size": 5, "gamma": 0.5}),
        spec(schedule={"name": "constant"}),
    )
    assert got == [
        "one_cycle max_lr=0.1",
        "cosine warmup_epochs=2",
        "step step_size=5 gamma=0.5",
        "constant",
    ]


def test_datasets_and_their_parameters() -> None:
    got = labels(
        spec(dataset={"name": "moons", "noise": 0.3}),
        spec(dataset={"name": "circles"}),
        spec(dataset={"name": "moons"}),
    )
    assert got == ["moons noise=0.3", "circles", "moons noise=0.1"]


def test_an_uploaded_dataset_shows_a_short_id_when_two_differ() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    got = labels(
        spec(dataset={"name": "uploaded", "id": a}),
        spec(dataset={"name": "uploaded", "id": b}),
        spec(dataset={"name": "iris"}),
    )
    assert got == [f"uploaded id={a[:8]}", f"uploaded id={b[:8]}", "iris"]


# -- sections of one variant, and those without one ----------------------------------


def test_parameters_that_differ_show_with_their_values() -> None:
    got = labels(
        spec(optimizer={"name": "adam", "lr": 1e-3}),
        spec(optimizer={"name": "adam", "lr": 1e-2}),
        spec(optimizer={"name": "adam", "lr": 1e-5}),
    )
    assert got == ["lr=0.001", "lr=0.01", "lr=1e-05"]


def test_training_and_regularization() -> None:
    got = labels(
        spec(training={"batch_size": 32}),
        spec(training={"batch_size": "full"}),
        spec(training={"batch_size": 1}),
    )
    assert got == ["batch_size=32", "batch_size=full", "batch_size=1"]
    got = labels(spec(regularization={"l2": 1e-4}), spec(regularization={"l2": 1e-3}))
    assert got == ["l2=0.0001", "l2=0.001"]


def test_a_default_that_switches_something_off_is_said_only_when_alone() -> None:
    got = labels(
        spec(),
        spec(regularization={"l2": 1e-4}),
        spec(model={"kind": "mlp", "dropout": 0.5}),
    )
    assert got == ["dropout=0 l2=0", "l2=0.0001", "dropout=0.5"]


def test_optional_sections_read_on_and_off() -> None:
    got = labels(spec(), spec(regularization={"early_stopping": {"patience": 10}}))
    assert got == ["early_stopping=off", "early_stopping=on"]
    got = labels(
        spec(regularization={"l2": 1e-4}),
        spec(regularization={"early_stopping": {"patience": 10}}),
        spec(regularization={"early_stopping": {"patience": 3}}),
    )
    assert got == [
        "l2=0.0001",
        "early_stopping=on patience=10",
        "early_stopping=on patience=3",
    ]
    got = labels(
        spec(regularization={"grad_clip": {"max_norm": 1.0}}),
        spec(regularization={"grad_clip": {"max_value": 0.5}}),
    )
    assert got == ["max_norm=1 max_value=none", "max_norm=none max_value=0.5"]


def test_keys_are_lengthened_only_where_two_would_read_alike() -> None:
    got = labels(
        spec(optimizer={"name": "sgd", "weight_decay": 0.1}),
        spec(optimizer={"name": "sgd"}, regularization={"weight_decay": 0.1}),
    )
    assert got == [
        "optimizer.weight_decay=0.1",
        "regularization.weight_decay=0.1",
    ]
    got = labels(
        spec(
            schedule={"name": "reduce_on_plateau", "patience": 2},
            regularization={"early_stopping": {"patience": 4}},
        ),
        spec(
            schedule={"name": "reduce_on_plateau", "patience": 3},
            regularization={"early_stopping": {"patience": 6}},
        ),
    )
    assert got == [
        "patience=2 early_stopping.patience=4",
        "patience=3 early_stopping.patience=6",
    ]


def test_sections_in_order_and_several_at_once() -> None:
    got = labels(
        spec(dataset={"name": "wine"}, optimizer={"name": "sgd", "lr": 0.1}, training={"seed": 1}),
        spec(dataset={"name": "iris"}, optimizer={"name": "adam"}, training={"seed": 2}),
    )
    assert got == ["wine sgd lr=0.1 seed=1", "iris adam seed=2"]


def test_the_top_level_name_is_ignored() -> None:
    got = labels(
        spec(name="first", training={"seed": 1}), spec(name="second", training={"seed": 2})
    )
    assert got == ["seed=1", "seed=2"]


# -- when the specs do not tell jobs apart -------------------------------------------


def test_one_job_or_identical_specs_fall_back_to_name_and_short_id() -> None:
    assert labels(spec(), names=["digits-mlp-adam"]) == ["digits-mlp-adam 00000000"]
    assert labels(spec(), spec(), names=["a", "b"]) == ["a 00000000", "b 00000001"]


def test_colliding_labels_get_name_and_short_id() -> None:
    got = labels(
        spec(training={"seed": 1}), spec(training={"seed": 1}), spec(), names=["x", "y", "z"]
    )
    assert got == ["seed=1 (x 00000000)", "seed=1 (y 00000001)", "seed=0"]


def test_alike_in_name_and_short_id_too_gets_the_whole_id() -> None:
    ids = ["abcdef01-0000-4000-8000-000000000001", "abcdef01-0000-4000-8000-000000000002"]
    got = spec_labels([spec(), spec()], names=["same", "same"], ids=ids)
    assert got == [f"same abcdef01 [{ids[0]}]", f"same abcdef01 [{ids[1]}]"]


def test_a_spec_the_language_no_longer_parses_is_read_as_stored() -> None:
    old = spec(optimizer={"name": "sgd", "momentum": 0.5})
    old["optimizer"]["retired_option"] = 3  # refused by today's language
    assert labels(old, spec(optimizer={"name": "adam"})) == ["sgd momentum=0.5", "adam"]
    older = spec(optimizer={"name": "sgd"})
    older["optimizer"]["retired_option"] = 4
    # A parameter with no default to compare with shows where it tells jobs apart.
    assert labels(old, older) == ["momentum=0.5 retired_option=3", "retired_option=4"]
    assert labels({}, spec()) == ["digits", "iris"]  # {} is a whole spec: all defaults


def test_labels_are_distinct_over_many_jobs() -> None:
    specs = [
        spec(optimizer={"name": name, "lr": lr})
        for name in ("sgd", "adam", "rmsprop")
        for lr in (0.1, 0.01, 0.001)
    ]
    got = labels(*specs)
    assert len(set(got)) == len(got) == 9
    assert "sgd lr=0.1" in got and "adam lr=0.001" in got


def test_arguments_must_match_in_length() -> None:
    with pytest.raises(ValueError):
        spec_labels([spec()], names=[], ids=[])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.001, "0.001"),
        (1e-5, "1e-05"),
        (0.9, "0.9"),
        (32, "32"),
        (32.0, "32"),
        (4294967295, "4294967295"),
        (0.00123456789, "0.00123456789"),  # %g would round it away
        (True, "on"),
        (False, "off"),
        (None, "none"),
        ([0.9, 0.999], "[0.9,0.999]"),
        ("full", "full"),
        ("3f0c2a9e-5b1d-4c7e-9a4f-0d2b6c8e1f37", "3f0c2a9e"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_format_value_of_an_optional_section() -> None:
    assert format_value(None, optional_section=True) == "off"
