"""Checking a sweep before it is stored: every path of its space leads somewhere in the
job spec, and every value it can take (each choice, both ends of each range, every grid
point) makes a job that ``POST /v1/jobs`` would accept. Errors name the path:
``space.optimizer.lr: optimizer.lr = 2000 makes an invalid job: …``."""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.config import Settings
from service.jobs.service import dataset_shape, limits
from service.spec import FieldError, JobSpec, SpecError, check_job, format_validation_error
from service.spec.common import monitorable_metrics
from service.spec.lab import RangeTest
from service.spec.paths import PathError, apply
from service.sweeps.spec import (
    MAX_GRID_POINTS,
    ComparisonSpec,
    Distribution,
    SweepSpec,
    expand_presets,
    grid_points,
)

DEFAULT_MAX_TRIALS = 20


def job_errors(
    base: dict[str, Any],
    params: dict[str, Any],
    *,
    session: Session,
    settings: Settings,
    owner: str,
) -> list[FieldError]:
    """Why ``base`` with ``params`` written in is not a job (empty when it is)."""
    try:
        body = apply(base, params)
    except PathError as exc:
        return [FieldError(str(exc).split(":", 1)[0], str(exc).split(":", 1)[1].strip())]
    try:
        spec = JobSpec.model_validate(body)
    except ValidationError as exc:
        errors = format_validation_error(exc.errors(), body)
        return [
            FieldError(e.field, "the job spec has no such field", e.allowed)
            if e.message.startswith("Extra inputs")
            else e
            for e in errors
        ]
    try:
        shape = dataset_shape(session=session, spec=spec, owner=owner)
    except SpecError as exc:
        return exc.errors
    return check_job(spec, shape, limits(settings))


def _describe(errors: list[FieldError]) -> str:
    e = errors[0]
    return f"{e.field}: {e.message}"


def _check_space(
    space: dict[str, Distribution],
    base: dict[str, Any],
    fixed: dict[str, Any],
    check: Any,
    errors: list[FieldError],
) -> None:
    """Each value of each path, one at a time (with the branch values above it fixed)."""
    for path, dist in space.items():
        if any(e.field == f"space.{path}" for e in errors):
            continue
        for value in dist.corners():
            problems = check(base, fixed | {path: value})
            if problems:
                errors.append(
                    FieldError(
                        f"space.{path}",
                        f"{path} = {value!r} makes an invalid job: {_describe(problems)}",
                    )
                )
                break
        for value, sub in dist.branches().items():
            _check_space(sub, base, fixed | {path: value}, check, errors)


def check_sweep(
    spec: SweepSpec, *, session: Session, settings: Settings, owner: str
) -> tuple[dict[str, Any], str]:
    """The spec to store (presets expanded, defaults resolved) and the task; raises
    SpecError naming every problem."""
    base = spec.base_dict()
    errors = [FieldError(f, m) for f, m in spec.coherence_errors()]
    task = _check_base(spec, session=session, settings=settings, owner=owner, errors=errors)
    try:
        space = expand_presets(spec.space)
    except ValueError as exc:
        raise SpecError(
            [FieldError(str(exc).split(":")[0], str(exc).split(":", 1)[1].strip())]
        ) from None

    def check(b: dict[str, Any], params: dict[str, Any]) -> list[FieldError]:
        return job_errors(b, params, session=session, settings=settings, owner=owner)

    # An "auto" end is checked at both ends of the rates its range test sweeps through:
    # whatever the test finds lies between them.
    test = spec.range_test or RangeTest()
    probe: dict[str, Distribution] = {}
    for path, dist in space.items():
        try:
            probe[path] = dist.with_ends(test.lr_min, test.lr_max)
        except ValueError:
            errors.append(
                FieldError(
                    f"space.{path}",
                    f"its numeric end lies beyond the rates the range test sweeps "
                    f"({test.lr_min:g} to {test.lr_max:g}), so its range could come out empty",
                )
            )
    _check_space(probe, base, {}, check, errors)
    auto = spec.auto_paths()
    if auto and not errors:
        test_body = range_test_body(base, spec.range_test)
        if problems := job_errors(test_body, {}, session=session, settings=settings, owner=owner):
            errors.append(
                FieldError("range_test", f"the base's range test is no job: {_describe(problems)}")
            )
    max_trials = spec.max_trials
    if spec.sampler.name == "grid":
        points = grid_points(space)
        if points is None:
            errors.append(
                FieldError(
                    "sampler.name",
                    "the grid sampler needs every parameter finite (choice, grid, or int "
                    f"without log of at most {MAX_GRID_POINTS} values) and none conditional",
                )
            )
        elif len(points) > MAX_GRID_POINTS:
            errors.append(
                FieldError(
                    "space", f"the grid has {len(points):,} points; at most {MAX_GRID_POINTS}"
                )
            )
        else:
            if max_trials is not None and max_trials > len(points):
                errors.append(FieldError("max_trials", f"the grid has only {len(points)} points"))
            max_trials = max_trials or len(points)
            if not errors:
                for point in points:
                    if problems := check(base, point):
                        where = ", ".join(f"{k}={v!r}" for k, v in point.items())
                        errors.append(
                            FieldError(
                                "space",
                                f"the grid point {where} makes an invalid job: "
                                f"{_describe(problems)}",
                            )
                        )
                        break
    if errors:
        raise SpecError(errors)

    measure = spec.pruner.measure
    if measure == "auto":
        measure = "progress" if _varies_length(spec, space) else "epoch"
    stored = spec.model_dump(mode="json", exclude_none=True)
    stored |= {
        "base": base,
        "space": {p: d.model_dump(mode="json", exclude_none=True) for p, d in space.items()},
        "max_trials": max_trials or DEFAULT_MAX_TRIALS,
        "sampler": stored["sampler"] | {"seed": _seed(spec.sampler.seed)},
        "pruner": stored["pruner"] | {"measure": measure},
        "objective": stored["objective"] | {"direction": spec.objective.mode},
        "seeds": spec.seed_list(),
    }
    return stored, task


def range_test_body(base: dict[str, Any], settings: RangeTest | None) -> dict[str, Any]:
    """The job that sets a sweep's "auto" ends: its base, run as a range test. The test
    drives the rate itself, so an "auto" rate in the base is given a placeholder."""
    test = settings or RangeTest()
    body = {k: v for k, v in base.items() if k not in ("kind", "range_test", "name")}
    try:
        auto = JobSpec.model_validate(body).auto_lr
    except ValidationError:
        auto = []  # job_errors says what is wrong with it
    body = apply(body, dict.fromkeys(auto, test.lr_min))
    return body | {
        "kind": "lr_range_test",
        "range_test": test.model_dump(mode="json", exclude_none=True),
    }


def check_comparison(
    spec: ComparisonSpec, *, session: Session, settings: Settings, owner: str
) -> tuple[dict[str, Any], str]:
    base = spec.base_dict()
    errors = [FieldError(f, m) for f, m in spec.seed_errors()]
    task = _check_base(spec, session=session, settings=settings, owner=owner, errors=errors)
    labels: list[str] = []
    for i, conf in enumerate(spec.configurations):
        problems = job_errors(base, conf.set, session=session, settings=settings, owner=owner)
        if problems:
            errors.append(
                FieldError(
                    f"configurations.{i}.set", f"makes an invalid job: {_describe(problems)}"
                )
            )
        labels.append(conf.label or label_of(conf.set))
    if len(set(labels)) != len(labels):
        errors.append(FieldError("configurations", "two configurations have the same label"))
    if any("training.seed" in c.set for c in spec.configurations):
        errors.append(
            FieldError("configurations", "training.seed is set by the repeats; leave it out")
        )
    if errors:
        raise SpecError(errors)
    stored = spec.model_dump(mode="json", exclude_none=True)
    stored |= {
        "base": base,
        "configurations": [
            {"label": label, "set": conf.set}
            for label, conf in zip(labels, spec.configurations, strict=True)
        ],
        "objective": stored["objective"] | {"direction": spec.objective.mode},
        "seeds": spec.seed_list(),
    }
    return stored, task


def label_of(values: dict[str, Any]) -> str:
    """``{"optimizer.name": "sgd", "optimizer.momentum": 0.9}`` → ``sgd momentum=0.9``."""
    if not values:
        return "base"
    parts = []
    for path, value in values.items():
        leaf = path.rsplit(".", 1)[-1]
        parts.append(str(value) if leaf in ("name", "kind") else f"{leaf}={value}")
    return " ".join(parts)[:200]


def _check_base(
    spec: SweepSpec | ComparisonSpec,
    *,
    session: Session,
    settings: Settings,
    owner: str,
    errors: list[FieldError],
) -> str:
    base = spec.base
    if base.kind != "train":
        # A trial is a training run; the lab's kinds measure, they are not scored.
        raise SpecError([FieldError("base.kind", "a sweep's trials are training jobs", ["train"])])
    try:
        shape = dataset_shape(session=session, spec=base, owner=owner)
    except SpecError as exc:
        raise SpecError(
            [FieldError(f"base.{e.field}", e.message, e.allowed) for e in exc.errors]
        ) from None
    for e in check_job(base, shape, limits(settings)):
        errors.append(FieldError(f"base.{e.field}", e.message, e.allowed))
    allowed = list(monitorable_metrics(shape.task))
    if spec.objective.metric not in allowed:
        errors.append(
            FieldError(
                "objective.metric",
                f"{spec.objective.metric!r} is not a metric a {shape.task} job can be scored by",
                allowed,
            )
        )
    return shape.task


def _varies_length(spec: SweepSpec, space: dict[str, Distribution]) -> bool:
    """Whether trials may differ in length or follow a one-cycle schedule."""
    if getattr(spec.base.schedule, "name", None) == "one_cycle":
        return True

    def walk(sp: dict[str, Distribution]) -> bool:
        for path, dist in sp.items():
            if path == "training.epochs":
                return True
            if path == "schedule.name" and "one_cycle" in (dist.values() or []):
                return True
            if any(walk(sub) for sub in dist.branches().values()):
                return True
        return False

    return walk(space)


def _seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbits(31)
