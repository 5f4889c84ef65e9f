"""Checking sweeps and comparisons before they are stored (service/sweeps/validate.py),
against a real SQLite database: every error names its path, and the stored spec has
every default resolved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from support import Backend

from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.spec import FieldError, SpecError
from service.sweeps.service import max_trials_of
from service.sweeps.spec import ComparisonSpec, SweepSpec
from service.sweeps.states import SweepKind
from service.sweeps.validate import (
    DEFAULT_MAX_TRIALS,
    check_comparison,
    check_sweep,
    job_errors,
    label_of,
)

BASE: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [16]},
    "training": {"epochs": 3, "batch_size": 64},
}


@pytest.fixture(scope="module")
def settings(module_sqlite_backend: Backend) -> Settings:
    return module_sqlite_backend.settings()


@pytest.fixture(scope="module")
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(str(settings.database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def owner(sessions: sessionmaker[Session]) -> str:
    from service.auth.service import create_user

    with sessions() as s:
        user = create_user(session=s, name="sweeper", role="user")
        s.commit()
        return user.id


class Checker:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, owner: str) -> None:
        self.sessions, self.settings, self.owner = sessions, settings, owner

    def sweep(self, **kw: Any) -> tuple[dict[str, Any], str]:
        spec = SweepSpec.model_validate({"base": BASE} | kw)
        with self.sessions() as s:
            return check_sweep(spec, session=s, settings=self.settings, owner=self.owner)

    def comparison(self, **kw: Any) -> tuple[dict[str, Any], str]:
        spec = ComparisonSpec.model_validate({"base": BASE} | kw)
        with self.sessions() as s:
            return check_comparison(spec, session=s, settings=self.settings, owner=self.owner)

    def sweep_errors(self, **kw: Any) -> list[FieldError]:
        with pytest.raises(SpecError) as info:
            self.sweep(**kw)
        return info.value.errors

    def comparison_errors(self, **kw: Any) -> list[FieldError]:
        with pytest.raises(SpecError) as info:
            self.comparison(**kw)
        return info.value.errors


@pytest.fixture
def check(sessions: sessionmaker[Session], settings: Settings, owner: str) -> Checker:
    return Checker(sessions, settings, owner)


def only(errors: list[FieldError]) -> FieldError:
    assert len(errors) == 1, [e.as_dict() for e in errors]
    return errors[0]


# -- errors name the path ------------------------------------------------------------


def test_a_field_the_optimizer_does_not_have(check: Checker) -> None:
    e = only(check.sweep_errors(space={"optimizer.foo": {"uniform": [0, 1]}}))
    assert e.field == "space.optimizer.foo"
    assert "optimizer.foo" in e.message and "invalid job" in e.message


def test_a_path_that_does_not_exist_at_all(check: Checker) -> None:
    e = only(check.sweep_errors(space={"foo.bar": {"choice": [1, 2]}}))
    assert e.field == "space.foo.bar"


def test_a_path_into_a_number(check: Checker) -> None:
    e = only(check.sweep_errors(space={"training.epochs.x": {"choice": [1]}}))
    assert e.field == "space.training.epochs.x"


def test_an_index_past_the_end_of_a_list(check: Checker) -> None:
    e = only(check.sweep_errors(space={"model.hidden.2": {"choice": [8, 16]}}))
    assert e.field == "space.model.hidden.2"
    assert "no item 2" in e.message


def test_an_lr_above_the_specs_cap(check: Checker) -> None:
    e = only(check.sweep_errors(space={"optimizer.lr": {"loguniform": [0.1, 2000]}}))
    assert e.field == "space.optimizer.lr"
    assert "2000" in e.message and "1000" in e.message


def test_the_lower_end_is_checked_too(check: Checker) -> None:
    e = only(check.sweep_errors(space={"model.dropout": {"uniform": [-0.5, 0.5]}}))
    assert e.field == "space.model.dropout"
    assert "-0.5" in e.message


def test_epochs_above_the_servers_cap(check: Checker, settings: Settings) -> None:
    e = only(check.sweep_errors(space={"training.epochs": {"int": [2, settings.max_epochs + 1]}}))
    assert e.field == "space.training.epochs"
    assert str(settings.max_epochs + 1) in e.message


def test_a_wide_int_range_is_checked_at_its_ends_not_value_by_value(check: Checker) -> None:
    # A hundred million values: enumerating them (or a job spec each) would take the API
    # down; the ends are what bounds can refuse. The high end tried is the last value the
    # step reaches.
    e = only(check.sweep_errors(space={"training.batch_size": {"int": [1, 10**8], "step": 3}}))
    assert e.field == "space.training.batch_size"
    assert str(1 + (10**8 - 1) // 3 * 3) in e.message
    stored, _ = check.sweep(space={"training.seed": {"int": [0, 2**32 - 1]}})
    assert stored["space"]["training.seed"] == {"int": [0, 2**32 - 1]}


def test_the_grid_sampler_refuses_an_int_range_too_long_to_enumerate(check: Checker) -> None:
    e = only(
        check.sweep_errors(sampler={"name": "grid"}, space={"training.seed": {"int": [0, 5000]}})
    )
    assert e.field == "sampler.name" and "at most 1000 values" in e.message


def test_a_choice_value_invalid_for_the_field(check: Checker) -> None:
    e = only(check.sweep_errors(space={"model.activation": {"choice": ["relu", "swish"]}}))
    assert e.field == "space.model.activation"
    assert "'swish'" in e.message


def test_an_unknown_optimizer_name(check: Checker) -> None:
    e = only(check.sweep_errors(space={"optimizer.name": {"choice": ["sgd", "lbfgs"]}}))
    assert e.field == "space.optimizer.name"
    assert "lbfgs" in e.message


def test_every_bad_path_is_named(check: Checker) -> None:
    errors = check.sweep_errors(
        space={
            "optimizer.lr": {"uniform": [0.001, 0.1]},  # fine
            "optimizer.foo": {"uniform": [0, 1]},
            "model.activation": {"choice": ["nope"]},
        }
    )
    assert sorted(e.field for e in errors) == ["space.model.activation", "space.optimizer.foo"]


def test_a_branch_sub_space_error_names_the_branch_path(check: Checker) -> None:
    space = {
        "optimizer.name": {
            "choice": [
                {"value": "sgd", "space": {"optimizer.momentum": {"uniform": [0.0, 1.5]}}},
                "adam",
            ]
        }
    }
    e = only(check.sweep_errors(space=space))
    assert e.field == "space.optimizer.momentum"
    assert "1.5" in e.message


def test_a_branch_field_is_checked_with_its_branch_value(check: Checker) -> None:
    # momentum is fine with SGD (its branch), although the base optimizer (Adam) has none
    stored, _ = check.sweep(
        space={
            "optimizer.name": {
                "choice": [
                    {"value": "sgd", "space": {"optimizer.momentum": {"uniform": [0.0, 0.9]}}},
                    "adam",
                ]
            }
        }
    )
    assert "optimizer.name" in stored["space"]


def test_a_branch_field_its_optimizer_lacks(check: Checker) -> None:
    # momentum in Adam's branch: Adam has no momentum, so the path leads nowhere.
    space = {
        "optimizer.name": {
            "choice": [{"value": "adam", "space": {"optimizer.momentum": {"uniform": [0, 0.9]}}}]
        }
    }
    try:
        stored, _ = check.sweep(space=space)
    except SpecError as exc:
        assert only(exc.errors).field == "space.optimizer.momentum"
        return
    pytest.fail(
        "BUG service/sweeps/spec.py apply() writes optimizer.momentum before optimizer.name "
        "and the switch to adam drops it, so a branch sampling a field its optimizer lacks "
        f"is accepted (its values never reach the job): {stored['space']}"
    )


def test_a_boolean_choice_is_accepted(check: Checker) -> None:
    try:
        stored, _ = check.sweep(space={"model.batch_norm": {"choice": [True, False]}})
    except SpecError as exc:
        pytest.fail(
            "BUG service/sweeps/spec.py Scalar reads true/false as 1/0, so a choice over a "
            f"boolean field is refused: {exc}"
        )
    assert stored["space"]["model.batch_norm"] == {"choice": [True, False]}


def test_a_preset_somewhere_else_than_optimizer(check: Checker) -> None:
    e = only(check.sweep_errors(space={"model": {"preset": "optimizer_family"}}))
    assert e.field == "space.model"


def test_grid_sampler_with_a_continuous_parameter(check: Checker) -> None:
    e = only(
        check.sweep_errors(
            space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, sampler={"name": "grid"}
        )
    )
    assert e.field == "sampler.name"


def test_grid_sampler_with_a_conditional_space(check: Checker) -> None:
    e = only(
        check.sweep_errors(
            space={"optimizer": {"preset": "optimizer_family", "names": ["sgd"]}},
            sampler={"name": "grid"},
        )
    )
    assert e.field == "sampler.name"


def test_grid_smaller_than_max_trials(check: Checker) -> None:
    e = only(
        check.sweep_errors(
            space={"optimizer.lr": {"grid": [0.01, 0.1]}, "model.dropout": {"grid": [0.0, 0.2]}},
            sampler={"name": "grid"},
            max_trials=5,
        )
    )
    assert e.field == "max_trials"
    assert "4 points" in e.message


def test_grid_of_more_than_1000_points(check: Checker) -> None:
    e = only(
        check.sweep_errors(
            space={
                "training.seed": {"int": [0, 99]},
                "training.batch_size": {"int": [1, 11]},
            },
            sampler={"name": "grid"},
        )
    )
    assert e.field == "space"
    assert "1,100 points" in e.message


def test_a_grid_point_whose_combination_is_invalid(check: Checker) -> None:
    # Each width alone is fine with the other at 16; both at 8192 exceed the parameter cap.
    space = {"model.hidden.0": {"grid": [16, 8192]}, "model.hidden.1": {"grid": [16, 8192]}}
    base = BASE | {"model": {"kind": "mlp", "hidden": [16, 16]}}
    e = only(check.sweep_errors(base=base, space=space, sampler={"name": "grid"}))
    assert e.field == "space"
    assert "model.hidden.0=8192, model.hidden.1=8192" in e.message
    # With a sampler that is not grid, only each value alone is checked: the driver fails
    # the trial that draws the bad combination (see tests/workers/test_sweep_driver.py).
    stored, _ = check.sweep(base=base, space=space, sampler={"name": "random"})
    assert stored["sampler"]["name"] == "random"


def test_objective_metric_not_allowed_for_the_task(check: Checker) -> None:
    e = only(
        check.sweep_errors(
            space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, objective={"metric": "val_r2"}
        )
    )
    assert e.field == "objective.metric"
    assert e.allowed is not None and "val_accuracy" in e.allowed and "val_r2" not in e.allowed


def test_objective_metric_for_a_regression(check: Checker) -> None:
    base = BASE | {"dataset": {"name": "diabetes"}}
    stored, task = check.sweep(
        base=base, space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, objective={"metric": "val_r2"}
    )
    assert task == "regression"
    assert stored["objective"]["direction"] == "max"
    e = only(
        check.sweep_errors(
            base=base,
            space={"optimizer.lr": {"uniform": [0.01, 0.1]}},
            objective={"metric": "val_accuracy"},
        )
    )
    assert e.field == "objective.metric"


def test_base_errors_are_prefixed_with_base(check: Checker, settings: Settings) -> None:
    base = BASE | {"training": {"epochs": settings.max_epochs + 1}}
    errors = check.sweep_errors(base=base, space={"optimizer.lr": {"uniform": [0.01, 0.1]}})
    assert "base.training.epochs" in [e.field for e in errors]
    assert all(e.field.startswith(("base.", "space.")) for e in errors)


def test_a_base_dataset_that_does_not_exist(check: Checker) -> None:
    base = BASE | {"dataset": {"name": "uploaded", "id": "no-such-dataset"}}
    errors = check.sweep_errors(base=base, space={"optimizer.lr": {"uniform": [0.01, 0.1]}})
    assert errors and all(e.field.startswith("base.dataset") for e in errors), [
        e.as_dict() for e in errors
    ]


# -- the stored spec ------------------------------------------------------------------


def test_stored_spec_resolves_every_default(check: Checker) -> None:
    stored, task = check.sweep(space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}})
    assert task == "classification"
    assert stored["base"] == BASE  # as the user set it
    assert stored["space"] == {"optimizer.lr": {"loguniform": [1e-3, 1e-1]}}
    assert stored["max_trials"] == DEFAULT_MAX_TRIALS == 20
    assert stored["sampler"]["name"] == "tpe"
    assert isinstance(stored["sampler"]["seed"], int) and 0 <= stored["sampler"]["seed"] < 2**32
    assert stored["pruner"]["measure"] == "epoch"
    assert stored["objective"] == {"metric": "val_loss", "direction": "min", "measure": "best"}
    assert stored["seeds"] == [0]
    assert stored["parallelism"] == 2 and stored["repeats"] == 1
    # what is stored parses back as the same sweep
    again = SweepSpec.model_validate(stored)
    assert again.sampler.seed == stored["sampler"]["seed"]
    assert again.max_trials == 20


def test_sampler_seed_is_drawn_when_absent_and_kept_when_given(check: Checker) -> None:
    space = {"optimizer.lr": {"uniform": [0.01, 0.1]}}
    seeds = {check.sweep(space=space)[0]["sampler"]["seed"] for _ in range(3)}
    assert len(seeds) > 1  # drawn each time (31 random bits)
    assert check.sweep(space=space, sampler={"name": "random", "seed": 42})[0]["sampler"] == {
        "name": "random",
        "seed": 42,
    }


def test_max_trials_of_a_grid_is_its_size(check: Checker) -> None:
    space = {"optimizer.lr": {"grid": [0.01, 0.1, 0.3]}, "model.dropout": {"grid": [0.0, 0.2]}}
    stored, _ = check.sweep(space=space, sampler={"name": "grid"})
    assert stored["max_trials"] == 6
    stored, _ = check.sweep(space=space, sampler={"name": "grid"}, max_trials=4)
    assert stored["max_trials"] == 4
    stored, _ = check.sweep(space=space, sampler={"name": "random"}, max_trials=7)
    assert stored["max_trials"] == 7


def test_presets_are_written_out(check: Checker) -> None:
    stored, _ = check.sweep(
        space={"optimizer": {"preset": "optimizer_family", "names": ["sgd", "adam"]}}
    )
    assert list(stored["space"]) == ["optimizer.name"]
    assert stored["space"]["optimizer.name"]["choice"] == [
        {"value": "sgd", "space": {"optimizer.momentum": {"uniform": [0.0, 0.99]}}},
        {
            "value": "adam",
            "space": {
                "optimizer.betas.0": {"uniform": [0.8, 0.99]},
                "optimizer.betas.1": {"uniform": [0.9, 0.9999]},
            },
        },
    ]
    # stored specs parse back without the preset
    assert SweepSpec.model_validate(stored).space["optimizer.name"].kind == "choice"


@pytest.mark.parametrize(
    ("base", "space", "measure", "expected"),
    [
        ({}, {"optimizer.lr": {"uniform": [0.01, 0.1]}}, "auto", "epoch"),
        (
            {"schedule": {"name": "one_cycle"}},
            {"optimizer.lr": {"uniform": [0.01, 0.1]}},
            "auto",
            "progress",
        ),
        ({}, {"training.epochs": {"int": [2, 4]}}, "auto", "progress"),
        ({}, {"schedule.name": {"choice": ["constant", "one_cycle"]}}, "auto", "progress"),
        ({}, {"schedule.name": {"choice": ["constant", "cosine"]}}, "auto", "epoch"),
        (
            {},
            {
                "optimizer.name": {
                    "choice": [{"value": "sgd", "space": {"training.epochs": {"grid": [2, 3]}}}]
                }
            },
            "auto",
            "progress",
        ),
        (
            {"schedule": {"name": "one_cycle"}},
            {"optimizer.lr": {"uniform": [0.01, 0.1]}},
            "epoch",
            "epoch",
        ),
        ({}, {"optimizer.lr": {"uniform": [0.01, 0.1]}}, "progress", "progress"),
    ],
)
def test_pruner_measure_resolution(
    check: Checker, base: dict[str, Any], space: dict[str, Any], measure: str, expected: str
) -> None:
    stored, _ = check.sweep(
        base=BASE | base, space=space, pruner={"name": "asha", "measure": measure}
    )
    assert stored["pruner"]["measure"] == expected
    assert stored["pruner"]["name"] == "asha"


@pytest.mark.parametrize(
    ("objective", "direction"),
    [
        ({"metric": "val_accuracy"}, "max"),
        ({"metric": "train_loss"}, "min"),
        ({"metric": "val_accuracy", "direction": "min"}, "min"),
    ],
)
def test_objective_direction_is_resolved(
    check: Checker, objective: dict[str, Any], direction: str
) -> None:
    stored, _ = check.sweep(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, objective=objective)
    assert stored["objective"]["direction"] == direction


def test_repeats_resolve_the_seeds(check: Checker) -> None:
    base = BASE | {"training": {"epochs": 3, "seed": 10}}
    stored, _ = check.sweep(base=base, space={"optimizer.lr": {"grid": [0.1]}}, repeats=3)
    assert stored["seeds"] == [10, 11, 12]
    stored, _ = check.sweep(
        base=base, space={"optimizer.lr": {"grid": [0.1]}}, repeats=2, seeds=[5, 1]
    )
    assert stored["seeds"] == [5, 1]


def test_budget_is_stored(check: Checker) -> None:
    stored, _ = check.sweep(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, budget={"epochs": 12})
    assert stored["budget"] == {"epochs": 12}


# -- comparisons -------------------------------------------------------------------


def test_comparison_stored_spec(check: Checker) -> None:
    stored, task = check.comparison(
        configurations=[
            {"set": {"optimizer.name": "sgd"}},
            {"set": {"optimizer.name": "sgd", "optimizer.momentum": 0.9}},
            {"label": "Adam", "set": {"optimizer.name": "adam"}},
            {"set": {}},
        ],
        repeats=3,
        objective={"metric": "val_accuracy"},
    )
    assert task == "classification"
    assert stored["configurations"] == [
        {"label": "sgd", "set": {"optimizer.name": "sgd"}},
        {"label": "sgd momentum=0.9", "set": {"optimizer.name": "sgd", "optimizer.momentum": 0.9}},
        {"label": "Adam", "set": {"optimizer.name": "adam"}},
        {"label": "base", "set": {}},
    ]
    # Its trials are its configurations: a column of the sweep, not a field of its spec.
    assert "max_trials" not in stored and max_trials_of(SweepKind.COMPARISON, stored) == 4
    assert stored["seeds"] == [0, 1, 2]
    assert stored["objective"]["direction"] == "max"
    assert "space" not in stored and "sampler" not in stored
    assert ComparisonSpec.model_validate(stored).repeats == 3  # the stored spec, as it is


def test_comparison_errors_name_the_configuration(check: Checker) -> None:
    errors = check.comparison_errors(
        configurations=[
            {"set": {"optimizer.name": "sgd"}},
            {"set": {"optimizer.lr": 5000}},
            {"set": {"optimizer.nope": 1}},
        ]
    )
    assert [e.field for e in errors] == ["configurations.1.set", "configurations.2.set"]
    assert "optimizer.lr" in errors[0].message
    assert "optimizer.nope" in errors[1].message


def test_comparison_made_labels_must_be_distinct(check: Checker) -> None:
    e = only(
        check.comparison_errors(
            configurations=[
                {"set": {"optimizer.name": "sgd"}},
                {"label": "sgd", "set": {"optimizer.name": "sgd", "optimizer.lr": 0.1}},
            ]
        )
    )
    assert e.field == "configurations"


def test_comparison_may_not_set_the_seed(check: Checker) -> None:
    e = only(
        check.comparison_errors(
            configurations=[{"set": {"training.seed": 3}}, {"set": {"optimizer.name": "sgd"}}]
        )
    )
    assert e.field == "configurations"
    assert "training.seed" in e.message


def test_comparison_base_and_objective_errors(check: Checker) -> None:
    errors = check.comparison_errors(
        base=BASE | {"model": {"kind": "mlp", "hidden": [16], "dropout": 0.5}},
        configurations=[{"set": {}}, {"set": {"optimizer.name": "sgd"}}],
        objective={"metric": "val_r2"},
    )
    assert [e.field for e in errors] == ["objective.metric"]


def test_comparison_configuration_with_a_field_of_another_optimizer(check: Checker) -> None:
    # "adam with momentum 0.9" is not a job: Adam has no momentum. It must be refused,
    # not run as a plain Adam under a label that says momentum.
    try:
        stored, _ = check.comparison(
            configurations=[
                {"set": {"optimizer.name": "sgd"}},
                {"set": {"optimizer.name": "adam", "optimizer.momentum": 0.9}},
            ]
        )
    except SpecError as exc:
        assert exc.errors[0].field == "configurations.1.set"
        return
    pytest.fail(
        "BUG service/sweeps/spec.py apply() drops optimizer.momentum when switching to adam "
        f"(it writes it before optimizer.name), so this configuration was accepted: {stored}"
    )


# -- helpers -----------------------------------------------------------------------


def test_label_of() -> None:
    assert label_of({}) == "base"
    assert label_of({"optimizer.name": "sgd", "optimizer.momentum": 0.9}) == "sgd momentum=0.9"
    assert label_of({"model.kind": "cnn"}) == "cnn"
    assert len(label_of({f"a.b{i}": "x" * 50 for i in range(10)})) == 200


def test_job_errors(sessions: sessionmaker[Session], settings: Settings, owner: str) -> None:
    with sessions() as s:
        assert (
            job_errors(BASE, {"optimizer.lr": 0.1}, session=s, settings=settings, owner=owner) == []
        )
        (e,) = job_errors(BASE, {"model.hidden.5": 1}, session=s, settings=settings, owner=owner)
        assert e.field == "model.hidden.5"
        errors = job_errors(BASE, {"optimizer.zz": 1}, session=s, settings=settings, owner=owner)
        assert errors[0].field == "optimizer.zz"
