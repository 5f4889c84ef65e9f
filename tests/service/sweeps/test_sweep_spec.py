"""The sweep language on its own (service/sweeps/spec.py): distributions and their
errors, presets, grids, writing values into a job spec (``apply``) and the coherence
rules of sweeps and comparisons. No database."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from service.spec import JobSpec
from service.spec.paths import PathError, apply
from service.sweeps.spec import (
    Branch,
    ComparisonSpec,
    Distribution,
    SweepSpec,
    expand_presets,
    grid_points,
    optimizer_family,
    walk_paths,
)


def dist(**kw: Any) -> Distribution:
    return Distribution.model_validate(kw)


def dist_error(**kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Distribution.model_validate(kw)
    return str(info.value)


# -- distributions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kind", "values", "corners"),
    [
        ({"choice": ["sgd", "adam"]}, "choice", ["sgd", "adam"], ["sgd", "adam"]),
        ({"uniform": [0.0, 0.5]}, "uniform", None, [0.0, 0.5]),
        ({"loguniform": [1e-4, 1e-1]}, "loguniform", None, [1e-4, 1e-1]),
        ({"int": [1, 7], "step": 3}, "int", [1, 4, 7], [1, 4, 7]),
        ({"int": [2, 4]}, "int", [2, 3, 4], [2, 3, 4]),
        ({"int": [1, 64], "log": True}, "int", None, [1, 64]),
        ({"grid": [16, 32, 64]}, "grid", [16, 32, 64], [16, 32, 64]),
        ({"choice": [True, False, None]}, "choice", [True, False, None], [True, False, None]),
    ],
)
def test_each_kind_parses_with_its_values_and_corners(
    given: dict[str, Any], kind: str, values: list[Any] | None, corners: list[Any]
) -> None:
    d = dist(**given)
    assert d.kind == kind
    assert d.values() == values
    assert d.corners() == corners


def test_choice_and_grid_keep_booleans_boolean() -> None:
    # A choice over a boolean field (model.batch_norm: [true, false]) must stay boolean:
    # the job spec refuses 1 and 0 for a boolean.
    for kind in ("choice", "grid"):
        values = dist(**{kind: [True, False]}).values()
        assert values is not None
        assert [type(v) for v in values] == [bool, bool], (
            "BUG service/sweeps/spec.py Scalar: the left_to_right union str|int|float|bool "
            f"reads true/false as the int 1/0 (lax mode); {kind} [true, false] -> {values}"
        )


def test_choice_keeps_strings_and_numbers_apart() -> None:
    d = dist(choice=[1, 1.5, "1", None])
    assert d.values() == [1, 1.5, "1", None]
    assert [type(v) for v in d.values()] == [int, float, str, type(None)]


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"uniform": [0.5, 0.1]}, "empty or inverted"),
        ({"uniform": [0.1, 0.1]}, "empty or inverted"),
        ({"loguniform": [1e-2, 1e-3]}, "empty or inverted"),
        ({"int": [5, 5]}, "empty or inverted"),
        ({"int": [9, 2]}, "empty or inverted"),
        ({"loguniform": [0.0, 1.0]}, "low must be above 0"),
        ({"loguniform": [-1.0, 1.0]}, "low must be above 0"),
        ({"int": [0, 8], "log": True}, "low must be at least 1"),
        ({"int": [1, 4], "step": 4}, "step 4 is wider than [1, 4]"),
        ({"int": [1, 4], "step": 0}, "greater than or equal to 1"),
        ({"choice": ["a", "b", "a"]}, "values repeat"),
        ({"grid": [1, 2, 2]}, "values repeat"),
        (
            {"choice": [{"value": "sgd"}, {"value": "sgd", "space": {}}]},
            "values repeat",
        ),
        ({"choice": []}, "at least 1 item"),
        ({"grid": []}, "at least 1 item"),
        ({"uniform": [0, 1], "choice": [1, 2]}, "give exactly one of"),
        ({"uniform": [0, 1], "loguniform": [0.1, 1]}, "got uniform, loguniform"),
        ({}, "give exactly one of"),
        ({"uniform": [0, 1], "step": 2}, "step and log go with int"),
        ({"choice": [1, 2], "log": True}, "step and log go with int"),
        ({"uniform": [0, 1], "names": ["sgd"]}, "names goes with preset"),
        ({"preset": "nope"}, "optimizer_family"),
        ({"preset": "optimizer_family", "names": ["lbfgs"]}, "names"),
        ({"uniform": [0, float("inf")]}, "finite"),
        ({"uniform": [0, 1], "typo": 3}, "Extra inputs"),
    ],
)
def test_distribution_errors(given: dict[str, Any], words: str) -> None:
    message = dist_error(**given)
    assert words in message, message


def test_int_step_exactly_the_width_is_fine() -> None:
    assert dist(int=[1, 4], step=3).values() == [1, 4]


def test_int_alias_is_written_back_as_int() -> None:
    d = dist(int=[2, 8], step=2)
    assert d.model_dump(mode="json", exclude_none=True) == {"int": [2, 8], "step": 2}


def test_branches_and_their_paths() -> None:
    d = dist(
        choice=[
            {"value": "sgd", "space": {"optimizer.momentum": {"uniform": [0.0, 0.9]}}},
            "adam",
            {"value": "rmsprop"},  # a branch without a space is a plain value
        ]
    )
    assert d.values() == ["sgd", "adam", "rmsprop"]
    assert list(d.branches()) == ["sgd"]
    assert walk_paths({"optimizer.name": d}) == ["optimizer.name", "optimizer.momentum"]


# -- presets -----------------------------------------------------------------------


def test_optimizer_family_preset_expands_to_conditional_branches() -> None:
    space = expand_presets(
        {
            "optimizer": dist(
                preset="optimizer_family", names=["sgd", "adam", "rmsprop", "adagrad"]
            ),
            "optimizer.lr": dist(loguniform=[1e-4, 1e-1]),
        }
    )
    assert list(space) == ["optimizer.name", "optimizer.lr"]
    name = space["optimizer.name"]
    assert name.kind == "choice"
    assert name.values() == ["sgd", "adam", "rmsprop", "adagrad"]
    branches = name.branches()
    assert set(branches) == {"sgd", "adam", "rmsprop"}  # adagrad brings nothing of its own
    assert list(branches["sgd"]) == ["optimizer.momentum"]
    assert list(branches["adam"]) == ["optimizer.betas.0", "optimizer.betas.1"]
    assert list(branches["rmsprop"]) == ["optimizer.alpha"]
    for sub in branches.values():
        for d in sub.values():
            assert d.kind == "uniform"


def test_optimizer_family_preset_without_names_takes_every_optimizer() -> None:
    space = expand_presets({"optimizer": dist(preset="optimizer_family")})
    values = space["optimizer.name"].values()
    assert values is not None
    assert set(values) == {"sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax"}
    branches = space["optimizer.name"].branches()
    for adam in ("adam", "adamw", "nadam", "adamax"):
        assert set(branches[adam]) == {"optimizer.betas.0", "optimizer.betas.1"}


def test_every_preset_branch_makes_a_valid_job_at_its_corners() -> None:
    for branch in optimizer_family(["sgd", "rmsprop", "adam", "adamw", "nadam", "adamax"]).choice:
        assert isinstance(branch, Branch)
        for path, d in branch.space.items():
            for value in d.corners():
                body = apply({}, {"optimizer.name": branch.value, path: value})
                JobSpec.model_validate(body)


def test_preset_only_at_the_optimizer_path() -> None:
    with pytest.raises(ValueError, match="space.model: preset optimizer_family goes at"):
        expand_presets({"model": dist(preset="optimizer_family")})


def test_presets_inside_branches_are_expanded_too() -> None:
    space = expand_presets(
        {
            "model.kind": dist(
                choice=[{"value": "mlp", "space": {"optimizer": {"preset": "optimizer_family"}}}]
            )
        }
    )
    inner = space["model.kind"].branches()["mlp"]
    assert list(inner) == ["optimizer.name"]
    assert inner["optimizer.name"].kind == "choice"


def test_expanding_twice_changes_nothing() -> None:
    once = expand_presets({"optimizer": dist(preset="optimizer_family", names=["sgd"])})
    twice = expand_presets(once)
    assert {k: v.model_dump() for k, v in once.items()} == {
        k: v.model_dump() for k, v in twice.items()
    }


# -- grids -------------------------------------------------------------------------


def test_grid_points_is_the_cartesian_product_in_order() -> None:
    points = grid_points(
        {
            "optimizer.lr": dist(grid=[0.1, 0.01]),
            "training.batch_size": dist(int=[16, 48], step=16),
            "optimizer.name": dist(choice=["sgd", "adam"]),
        }
    )
    assert points is not None
    assert len(points) == 2 * 3 * 2
    assert points[0] == {"optimizer.lr": 0.1, "training.batch_size": 16, "optimizer.name": "sgd"}
    assert points[-1] == {
        "optimizer.lr": 0.01,
        "training.batch_size": 48,
        "optimizer.name": "adam",
    }
    assert len({tuple(p.values()) for p in points}) == len(points)


@pytest.mark.parametrize(
    "space",
    [
        {"optimizer.lr": {"uniform": [0.1, 0.2]}},
        {"optimizer.lr": {"loguniform": [0.1, 0.2]}},
        {"training.batch_size": {"int": [1, 64], "log": True}},
        {
            "optimizer.name": {
                "choice": [{"value": "sgd", "space": {"optimizer.momentum": {"grid": [0.5]}}}]
            }
        },
    ],
)
def test_grid_points_none_for_continuous_or_conditional(space: dict[str, Any]) -> None:
    assert grid_points({k: dist(**v) for k, v in space.items()}) is None


# -- apply -------------------------------------------------------------------------


def test_apply_writes_nested_paths_without_touching_the_base() -> None:
    base = {"dataset": {"name": "digits"}, "optimizer": {"name": "sgd", "lr": 0.1}}
    out = apply(base, {"optimizer.lr": 0.5, "training.epochs": 4, "model.dropout": 0.2})
    assert out["optimizer"] == {"name": "sgd", "lr": 0.5}
    assert out["training"] == {"epochs": 4}
    assert out["model"] == {"kind": "mlp", "dropout": 0.2}  # the default member, named
    assert base == {"dataset": {"name": "digits"}, "optimizer": {"name": "sgd", "lr": 0.1}}
    JobSpec.model_validate(out)


def test_apply_list_index_fills_in_the_default_list() -> None:
    out = apply({}, {"optimizer.betas.0": 0.85})
    assert out["optimizer"] == {"name": "adam", "betas": [0.85, 0.999]}
    out = apply({"optimizer": {"name": "adamw"}}, {"optimizer.betas.1": 0.95})
    assert out["optimizer"] == {"name": "adamw", "betas": [0.9, 0.95]}
    assert JobSpec.model_validate(out).optimizer.betas == (0.9, 0.95)


def test_apply_list_index_keeps_the_bases_other_items() -> None:
    out = apply({"optimizer": {"name": "adam", "betas": [0.8, 0.9]}}, {"optimizer.betas.1": 0.95})
    assert out["optimizer"]["betas"] == [0.8, 0.95]
    out = apply({"model": {"kind": "mlp", "hidden": [16, 8]}}, {"model.hidden.1": 4})
    assert out["model"]["hidden"] == [16, 4]


def test_apply_list_index_of_the_default_model() -> None:
    out = apply({}, {"model.hidden.0": 8})
    assert out["model"] == {"kind": "mlp", "hidden": [8]}


def test_apply_both_betas_after_switching_to_adam() -> None:
    out = apply(
        {"optimizer": {"name": "sgd", "momentum": 0.9}},
        {"optimizer.name": "adam", "optimizer.betas.0": 0.8, "optimizer.betas.1": 0.95},
    )
    assert out["optimizer"] == {"name": "adam", "betas": [0.8, 0.95]}


def test_switching_the_optimizer_drops_the_old_members_fields() -> None:
    base = {"optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True, "lr": 0.1}}
    out = apply(base, {"optimizer.name": "adam"})
    assert out["optimizer"] == {"name": "adam", "lr": 0.1}  # lr is common to both
    JobSpec.model_validate(out)
    out = apply({"optimizer": {"name": "adam", "betas": [0.8, 0.9]}}, {"optimizer.name": "rmsprop"})
    assert out["optimizer"] == {"name": "rmsprop"}


def test_switching_the_optimizer_keeps_new_fields_set_with_it() -> None:
    out = apply(
        {"optimizer": {"name": "adam", "betas": [0.8, 0.9], "amsgrad": True}},
        {"optimizer.name": "sgd", "optimizer.momentum": 0.5},
    )
    assert out["optimizer"] == {"name": "sgd", "momentum": 0.5}


def test_switching_the_schedule_drops_the_old_schedules_fields() -> None:
    out = apply({"schedule": {"name": "step", "step_size": 3}}, {"schedule.name": "constant"})
    assert out["schedule"] == {"name": "constant"}
    JobSpec.model_validate(out)


def test_a_field_the_new_member_lacks_is_not_silently_dropped() -> None:
    # {"optimizer.name": "adam", "optimizer.momentum": 0.9}: Adam has no momentum. The
    # docstring of apply promises "tags first, so the fields set after them land on the
    # new member", so the job must say momentum (and then fail validation) rather than
    # lose it: a comparison configuration or trial claiming momentum 0.9 must not run
    # an Adam without it.
    out = apply({}, {"optimizer.name": "adam", "optimizer.momentum": 0.9})
    assert out["optimizer"].get("momentum") == 0.9, (
        "BUG service/sweeps/spec.py apply(): params are ordered by (dot count, path), so "
        "'optimizer.momentum' is written before 'optimizer.name' and then dropped by the "
        f"tag switch; got {out['optimizer']}"
    )


def test_apply_creates_missing_objects() -> None:
    out = apply({"dataset": {"name": "digits"}}, {"regularization.early_stopping.patience": 3})
    assert out["regularization"] == {"early_stopping": {"patience": 3}}
    spec = JobSpec.model_validate(out)
    assert spec.regularization.early_stopping is not None
    assert spec.regularization.early_stopping.patience == 3


def test_apply_into_an_explicit_null() -> None:
    out = apply(
        {"regularization": {"early_stopping": None}}, {"regularization.early_stopping.patience": 2}
    )
    assert out["regularization"]["early_stopping"] == {"patience": 2}


@pytest.mark.parametrize(
    ("base", "params", "where"),
    [
        ({"model": {"kind": "mlp", "hidden": [16]}}, {"model.hidden.3": 8}, "model.hidden.3"),
        ({"model": {"kind": "mlp", "hidden": [16]}}, {"model.hidden.x": 8}, "model.hidden.x"),
        ({"training": {"epochs": 5}}, {"training.epochs.x": 1}, "training.epochs.x"),
        ({"optimizer": {"name": "sgd"}}, {"optimizer.betas.0": 0.9}, "optimizer.betas"),
        (
            {"model": {"kind": "mlp", "hidden": [16]}},
            {"model.hidden.0.deeper": 1},
            "model.hidden.0",
        ),
    ],
)
def test_apply_path_errors(base: dict[str, Any], params: dict[str, Any], where: str) -> None:
    with pytest.raises(PathError) as info:
        apply(base, params)
    assert str(info.value).startswith(where), str(info.value)


def test_path_error_is_a_value_error() -> None:
    assert issubclass(PathError, ValueError)


# -- sweeps and comparisons -----------------------------------------------------------


def sweep(**kw: Any) -> SweepSpec:
    return SweepSpec.model_validate({"space": {"optimizer.lr": {"uniform": [0.01, 0.1]}}} | kw)


def sweep_error(**kw: Any) -> str:
    """The parse error, or else the settings that contradict each other (which
    check_sweep reports as 422s naming their fields)."""
    try:
        spec = sweep(**kw)
    except ValidationError as exc:
        return str(exc)
    problems = spec.coherence_errors()
    assert problems, f"{kw} was accepted"
    return "; ".join(f"{field}: {message}" for field, message in problems)


def test_sweep_defaults() -> None:
    s = sweep()
    assert s.sampler.name == "tpe"
    assert s.sampler.seed is None
    assert s.pruner.name == "none"
    assert s.pruner.measure == "auto"
    assert s.objective.metric == "val_loss"
    assert s.objective.mode == "min"
    assert (s.parallelism, s.repeats, s.max_trials, s.budget) == (2, 1, None, None)


@pytest.mark.parametrize(
    ("metric", "direction", "mode"),
    [
        ("val_accuracy", None, "max"),
        ("val_r2", None, "max"),
        ("val_loss", None, "min"),
        ("val_mae", None, "min"),
        ("val_loss", "max", "max"),
    ],
)
def test_objective_direction(metric: str, direction: str | None, mode: str) -> None:
    objective = {"metric": metric} | ({"direction": direction} if direction else {})
    assert sweep(objective=objective).objective.mode == mode


def test_space_must_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="space"):
        SweepSpec.model_validate({"space": {}})


def test_space_is_required() -> None:
    with pytest.raises(ValidationError, match="space"):
        SweepSpec.model_validate({})


def test_pruner_with_repeats_is_refused() -> None:
    assert "with repeats > 1 use pruner none" in sweep_error(repeats=3, pruner={"name": "asha"})
    assert sweep(repeats=3, pruner={"name": "none"}).repeats == 3


def test_seed_in_space_with_repeats_is_refused() -> None:
    message = sweep_error(repeats=2, space={"training.seed": {"int": [0, 9]}})
    assert "space.training.seed" in message
    # ... also inside a branch
    message = sweep_error(
        repeats=2,
        space={
            "optimizer.name": {
                "choice": [{"value": "sgd", "space": {"training.seed": {"grid": [1, 2]}}}]
            }
        },
    )
    assert "space.training.seed" in message
    assert sweep(space={"training.seed": {"int": [0, 9]}}).repeats == 1


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"parallelism": 0}, "greater than or equal to 1"),
        ({"max_trials": 0}, "greater than or equal to 1"),
        ({"max_trials": 1001}, "less than or equal to 1000"),
        ({"repeats": 0}, "greater than or equal to 1"),
        ({"sampler": {"name": "bayes"}}, "sampler.name"),
        ({"pruner": {"name": "asha", "reduction_factor": 1}}, "reduction_factor"),
        ({"pruner": {"name": "asha", "grace": 0}}, "grace"),
        ({"objective": {"metric": "val_loss", "direction": "up"}}, "direction"),
        ({"budget": {}}, "give epochs, seconds or both"),
        ({"budget": {"epochs": 0}}, "budget.epochs"),
        ({"seeds": [1, 2]}, "seeds: give 1"),
        ({"repeats": 2, "seeds": [4, 4]}, "must be distinct"),
        ({"sampler": {"seed": -1}}, "sampler.seed"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_sweep_errors(kw: dict[str, Any], words: str) -> None:
    message = sweep_error(**kw)
    assert words in message, message


def test_seed_list() -> None:
    assert sweep().seed_list() == [0]
    assert sweep(base={"training": {"seed": 7}}).seed_list() == [7]
    assert sweep(base={"training": {"seed": 7}}, repeats=3).seed_list() == [7, 8, 9]
    assert sweep(repeats=2, seeds=[11, 3]).seed_list() == [11, 3]
    top = 2**32 - 1
    assert sweep(base={"training": {"seed": top}}, repeats=2).seed_list() == [top, 0]


def test_base_dict_keeps_only_what_the_user_set() -> None:
    s = sweep(base={"dataset": {"name": "digits"}, "optimizer": {"name": "sgd", "momentum": 0.9}})
    assert s.base_dict() == {
        "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd", "momentum": 0.9},
    }


def comparison(**kw: Any) -> ComparisonSpec:
    confs = [{"set": {"optimizer.name": "sgd"}}, {"set": {"optimizer.name": "adam"}}]
    return ComparisonSpec.model_validate({"configurations": confs} | kw)


def test_comparison_defaults() -> None:
    c = comparison()
    assert c.repeats == 5
    assert c.seed_list() == [0, 1, 2, 3, 4]


def test_comparison_needs_two_repeats_and_two_configurations() -> None:
    with pytest.raises(ValidationError, match="repeats"):
        comparison(repeats=1)
    with pytest.raises(ValidationError, match="configurations"):
        comparison(configurations=[{"set": {}}])


def test_comparison_labels_are_checked_with_the_defaults_filled_in() -> None:
    # Repeated labels (given or made from `set`) are a 422 of check_comparison.
    confs = [{"label": "a", "set": {}}, {"label": "a", "set": {"optimizer.lr": 0.1}}]
    assert len(comparison(configurations=confs).configurations) == 2
    # unlabelled configurations are named later (validate.label_of)
    c = comparison(configurations=[{"set": {}}, {"label": "a", "set": {"optimizer.lr": 0.1}}])
    assert [x.label for x in c.configurations] == [None, "a"]


def test_comparison_has_no_space_or_pruner() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        comparison(space={"optimizer.lr": {"uniform": [0.1, 0.2]}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        comparison(pruner={"name": "asha"})
