"""The sweep language: a base job spec, a search space over dotted paths into it, and how
to search (sampler), stop bad trials (pruner), score them (objective) and how much to spend.

A sweep is pure data: a trial is the base spec with the trial's values written at their
paths (:func:`apply`, from :mod:`service.spec.paths`, which ``descent --set`` uses too),
validated exactly as ``POST /v1/jobs`` would validate it.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from service.spec import JobSpec
from service.spec.common import SpecModel, metric_mode
from service.spec.lab import RangeTest
from service.spec.optimizers import OPTIMIZER_NAMES
from service.text import LABEL_PATTERN

#: What a choice or grid may hold: JSON scalars (what Optuna's categorical takes).
#: A smart union: each JSON type keeps its type (true stays a boolean, 1 an integer).
Scalar = str | bool | int | Annotated[float, Field(allow_inf_nan=False)] | None

#: A range's end: a number, or (on a learning rate) "auto", set by a range test.
Bound = Annotated[StrictFloat, Field(allow_inf_nan=False)] | Literal["auto"]
AUTO = "auto"
#: The paths whose range may have "auto" ends.
AUTO_PATHS = ("optimizer.lr", "schedule.max_lr")

MAX_TRIALS = 1000
MAX_GRID_POINTS = 1000
MAX_SPACE_ENTRIES = 32
KINDS = ("choice", "uniform", "loguniform", "int", "grid", "preset")
PRESETS = ("optimizer_family",)


class Branch(SpecModel):
    """A value of a choice that brings parameters of its own: they are sampled only in
    the trials that take this value (e.g. momentum only when the optimizer is SGD)."""

    value: Scalar
    space: dict[str, Distribution] = Field(default_factory=dict, max_length=MAX_SPACE_ENTRIES)


#: An end of an ``int`` range: exact as a float too (Optuna's samplers compute in floats).
IntEnd = Annotated[StrictInt, Field(ge=-(2**53), le=2**53)]


class Distribution(SpecModel):
    """Exactly one of: ``choice``, ``uniform``, ``loguniform``, ``int`` (with ``step``
    and ``log``), ``grid`` or ``preset`` (with ``names``)."""

    choice: list[Scalar | Branch] | None = Field(
        None, min_length=1, max_length=100, description="Pick one of these values."
    )
    uniform: tuple[Bound, Bound] | None = Field(
        None, description='[low, high], low < high. On a learning rate, either end may be "auto".'
    )
    loguniform: tuple[Bound, Bound] | None = Field(
        None,
        description="[low, high], 0 < low < high; sampled uniformly in log space. On a "
        'learning rate (`optimizer.lr`, `schedule.max_lr`) either end may be "auto": a '
        "range test of the base spec sets it before the first trial.",
    )
    int_: tuple[IntEnd, IntEnd] | None = Field(
        None,
        alias="int",
        description="[low, high] inclusive, low < high. A range of more than "
        f"{MAX_GRID_POINTS} values is sampled, never enumerated.",
    )
    step: typing.Annotated[StrictInt, Field(ge=1)] | None = Field(
        None, description="With `int`: the spacing of the values (default 1)."
    )
    log: StrictBool | None = Field(None, description="With `int`: sample in log space.")
    grid: list[Scalar] | None = Field(
        None,
        min_length=1,
        max_length=MAX_GRID_POINTS,
        description="Values to enumerate (with the grid sampler; a choice otherwise).",
    )
    preset: Literal["optimizer_family"] | None = Field(
        None,
        description="A shipped conditional space, at the path `optimizer`: the optimizer's "
        "name, with momentum for SGD, betas for the Adam family and alpha for RMSProp.",
    )
    names: list[Literal[OPTIMIZER_NAMES]] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, description="With `preset: optimizer_family`: which optimizers."
    )

    model_config = SpecModel.model_config | {
        "validate_by_name": True,
        "validate_by_alias": True,
        "serialize_by_alias": True,
    }

    def given(self, kind: str) -> Any:
        """What the spec gave for ``kind`` (``uniform``, ``int``, ``choice``, …), or None."""
        return getattr(self, "int_" if kind == "int" else kind)

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        given = [k for k in KINDS if self.given(k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(KINDS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        kind = given[0]
        if (self.step is not None or self.log is not None) and kind != "int":
            raise ValueError("step and log go with int")
        if self.names is not None and kind != "preset":
            raise ValueError("names goes with preset")
        if kind in ("uniform", "loguniform", "int") and AUTO not in self.given(kind):
            low, high = self.given(kind)
            if not low < high:
                raise ValueError(f"{kind}: [{low}, {high}] is empty or inverted; need low < high")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: low must be above 0 (got {low})")
            if kind == "int" and self.log and low < 1:
                raise ValueError(f"int with log: low must be at least 1 (got {low})")
            if kind == "int" and self.step is not None and self.step > high - low:
                raise ValueError(f"int: step {self.step} is wider than [{low}, {high}]")
        ends = self.given(kind) if kind == "loguniform" else ()
        if AUTO in ends and any(v != AUTO and v <= 0 for v in ends):
            raise ValueError("loguniform: its ends must be above 0")
        if kind in ("choice", "grid"):
            values = [v.value if isinstance(v, Branch) else v for v in self.given(kind)]
            keys = [repr(v) for v in values]
            if len(set(keys)) != len(keys):
                raise ValueError(f"{kind}: values repeat")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if self.given(k) is not None)

    @property
    def auto(self) -> bool:
        """Whether an end of its range is "auto" (left to a range test)."""
        return self.kind in ("uniform", "loguniform") and AUTO in self.given(self.kind)

    def with_ends(self, low: float, high: float) -> Distribution:
        """The distribution with its "auto" ends set to ``low`` and ``high``."""
        if not self.auto:
            return self
        given = self.given(self.kind)
        ends = (low if given[0] == AUTO else given[0], high if given[1] == AUTO else given[1])
        return Distribution.model_validate({self.kind: ends})

    def values(self) -> list[Any] | None:
        """Every value, for a finite distribution (choice, grid, int); else None."""
        if self.choice is not None:
            return [v.value if isinstance(v, Branch) else v for v in self.choice]
        if self.grid is not None:
            return list(self.grid)
        if self.int_ is not None and not self.log:
            low, high = self.int_
            step = self.step or 1
            if (high - low) // step + 1 > MAX_GRID_POINTS:
                return None  # too many to enumerate: sampled, and checked at its ends
            return list(range(low, high + 1, step))
        return None

    def branches(self) -> dict[Any, dict[str, Distribution]]:
        """Value → its own sub-space, for the choices that have one."""
        return {b.value: b.space for b in self.choice or [] if isinstance(b, Branch) and b.space}

    def corners(self) -> list[Any]:
        """The values a validation must try: every finite value, or both ends."""
        finite = self.values()
        if finite is not None:
            return finite
        if self.int_ is not None:
            low, high = self.int_
            step = self.step or 1
            return [low, low + (high - low) // step * step]  # the last value a step reaches
        for kind in ("uniform", "loguniform"):
            if self.given(kind) is not None:
                return list(self.given(kind))
        return []


Branch.model_rebuild()


class SamplerSpec(SpecModel):
    name: Literal["grid", "random", "tpe", "cmaes", "gp"] = Field(
        "tpe",
        description="Optuna's sampler of that name. `grid` enumerates every combination of "
        "finite values (choice, grid, int); `cmaes` samples categorical parameters at random.",
    )
    seed: StrictInt | None = Field(
        None, ge=0, le=2**32 - 1, description="Makes the sampling reproducible; drawn if absent."
    )
    n_startup_trials: StrictInt | None = Field(
        None,
        ge=0,
        le=MAX_TRIALS,
        description="tpe, cmaes, gp: random trials before the model takes over "
        "(Optuna's defaults: 10).",
    )


class PrunerSpec(SpecModel):
    name: Literal["none", "median", "asha", "hyperband"] = Field(
        "none",
        description="`median`: stop a trial worse than the median of earlier trials at the "
        "same step. `asha`: asynchronous successive halving. `hyperband`: ASHA over "
        "several brackets of grace. Optuna's pruners of those names.",
    )
    grace: StrictInt = Field(
        1,
        ge=1,
        le=100_000,
        description="The first step a trial may be judged at (ASHA's and Hyperband's minimum "
        "resource), in epochs, or in percent of the run with `measure: progress`.",
    )
    reduction_factor: StrictInt = Field(
        3, ge=2, le=10, description="asha, hyperband: keep the best 1/η at each rung."
    )
    n_startup_trials: StrictInt = Field(
        5, ge=0, le=MAX_TRIALS, description="median: trials that must end before it prunes."
    )
    measure: Literal["auto", "epoch", "progress"] = Field(
        "auto",
        description="What a step is: an `epoch`, or a percent of the trial's own run "
        "(`progress`), so runs of different lengths — or 1cycle schedules, compared at the "
        "same fraction of their cycle — are judged alike. `auto`: progress when the schedule "
        "is one_cycle or the epochs vary, else epoch.",
    )
    skip_warmup: StrictBool = Field(
        True, description="Never judge a trial during its schedule's warm-up epochs."
    )


class ObjectiveSpec(SpecModel):
    metric: str = Field(
        "val_loss",
        min_length=1,
        max_length=64,
        description="A metric the trials record, e.g. val_loss, val_accuracy, val_r2.",
    )
    direction: Literal["min", "max"] | None = Field(
        None, description="Default: max for accuracies and r2, min otherwise."
    )
    measure: Literal["best", "last"] = Field(
        "best", description="Score a trial by its best epoch or by its last."
    )

    @property
    def mode(self) -> Literal["min", "max"]:
        return self.direction or metric_mode(self.metric)


class BudgetSpec(SpecModel):
    epochs: StrictInt | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Start no trial once the trials have run this many epochs in all.",
    )
    seconds: StrictFloat | None = Field(
        None,
        gt=0,
        le=365 * 24 * 3600,
        description="Start no trial after this long, and cancel those still running.",
    )

    @model_validator(mode="after")
    def _something(self) -> BudgetSpec:
        if self.epochs is None and self.seconds is None:
            raise ValueError("give epochs, seconds or both")
        return self


Name = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": LABEL_PATTERN})
]


class SweepCommon(SpecModel):
    name: Name | None = Field(None, description="A display label; default: made from the spec.")
    base: JobSpec = Field(
        default_factory=JobSpec, description="The job every trial starts from (as POST /v1/jobs)."
    )
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    parallelism: StrictInt = Field(
        2, ge=1, le=64, description="Trials in progress at once (each runs `repeats` jobs)."
    )
    repeats: StrictInt = Field(
        1,
        ge=1,
        le=50,
        description="Seeds per configuration: each trial runs once per seed, the same seeds "
        "for every trial, and scores the mean.",
    )
    seeds: list[Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]] | None = Field(
        None,
        max_length=50,
        description="The seeds (as many as `repeats`, distinct); default: the base seed, "
        "the base seed + 1, …",
    )
    budget: BudgetSpec | None = None

    def seed_errors(self) -> list[tuple[str, str]]:
        if self.seeds is None:
            return []
        if len(self.seeds) != self.repeats:
            return [("seeds", f"give {self.repeats} seeds (one per repeat)")]
        if len(set(self.seeds)) != len(self.seeds):
            return [("seeds", "the seeds must be distinct")]
        return []

    def seed_list(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        if self.repeats == 1:
            return [self.base.training.seed]
        return [(self.base.training.seed + i) % 2**32 for i in range(self.repeats)]

    def base_dict(self) -> dict[str, Any]:
        """The base as the user wrote it: only the fields they set, so a trial that
        switches the optimizer gets the new optimizer's defaults, not the old one's."""
        return self.base.model_dump(mode="json", exclude_unset=True)


class SweepSpec(SweepCommon):
    """``POST /v1/sweeps``."""

    space: dict[str, Distribution] = Field(
        ...,
        min_length=1,
        max_length=MAX_SPACE_ENTRIES,
        description="Dotted path into the job spec → how to vary it. Paths may index "
        "lists (`optimizer.betas.0`).",
    )
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    max_trials: StrictInt | None = Field(
        None,
        ge=1,
        le=MAX_TRIALS,
        description="Configurations to try. Default: the whole grid with the grid sampler, "
        "else 20.",
    )
    range_test: RangeTest | None = Field(
        None,
        description='With "auto" ends in the space: the settings of the learning-rate range '
        "test that sets them (default: those of a range-test job). `suggestion` is not "
        "used: the range ends at the rate of the smoothed loss's minimum and starts a "
        "hundredth of it below.",
    )

    def auto_paths(self) -> list[str]:
        """The space's paths with an "auto" end, in the space's order."""
        return [path for path, dist in self.space.items() if dist.auto]

    def coherence_errors(self) -> list[tuple[str, str]]:
        """(field, message) for settings that contradict each other."""
        out = self.seed_errors() + self.auto_errors()
        if self.repeats > 1 and self.pruner.name != "none":
            out.append(
                ("pruner.name", "pruning judges single runs; with repeats > 1 use pruner none")
            )
        if self.repeats > 1 and any(p == "training.seed" for p in walk_paths(self.space)):
            out.append(("space.training.seed", "repeats set the seeds; vary one or the other"))
        return out

    def auto_errors(self) -> list[tuple[str, str]]:
        """Where "auto" ends cannot be: off the learning rates, inside a branch (the range
        test runs one optimizer, the base's), or beside a space that switches optimizers."""
        out: list[tuple[str, str]] = []
        auto = self.auto_paths()
        for path in auto:
            if path not in AUTO_PATHS:
                out.append(
                    (
                        f"space.{path}",
                        '"auto" ends are for learning rates: ' + ", ".join(AUTO_PATHS),
                    )
                )

        def nested(space: dict[str, Distribution]) -> None:
            for path, dist in space.items():
                for value, sub in dist.branches().items():
                    for inner, d in sub.items():
                        if d.auto:
                            out.append(
                                (
                                    f"space.{inner}",
                                    f'"auto" ends go at the top of the space, not in the '
                                    f"branch {path} = {value!r}: one range test of the base "
                                    "spec sets them",
                                )
                            )
                    nested(sub)

        nested(self.space)
        if auto and {"optimizer", "optimizer.name"} & set(walk_paths(self.space)):
            out.append(
                (
                    f"space.{auto[0]}",
                    '"auto" ends come from one range test of the base optimizer; a space '
                    "that varies the optimizer needs numeric bounds",
                )
            )
        if self.range_test is not None and not auto:
            out.append(("range_test", 'only with an "auto" end in the space'))
        if self.range_test is not None and self.range_test.suggestion is not None:
            out.append(
                (
                    "range_test.suggestion",
                    "a sweep's range runs from a hundredth of the rate at the smoothed "
                    "minimum to that rate; leave suggestion out",
                )
            )
        return out


class Configuration(SpecModel):
    label: Name | None = Field(None, description="Default: made from `set`.")
    set: dict[str, Any] = Field(
        ...,
        max_length=MAX_SPACE_ENTRIES,
        description='Dotted path → value, written over the base (e.g. {"optimizer.name": '
        '"sgd", "optimizer.momentum": 0.9}); empty for the base itself.',
    )


class ComparisonSpec(SweepCommon):
    """``POST /v1/comparisons``: named configurations, each run with the same seeds."""

    configurations: list[Configuration] = Field(..., min_length=2, max_length=20)
    repeats: StrictInt = Field(5, ge=2, le=50, description="Seeds per configuration (at least 2).")


# -- the space --------------------------------------------------------------------


def walk_paths(space: dict[str, Distribution]) -> list[str]:
    """Every path the space sets, branches included."""
    out: list[str] = []
    for path, dist in space.items():
        out.append(path)
        for sub in dist.branches().values():
            out.extend(walk_paths(sub))
    return out


def expand_presets(space: dict[str, Distribution]) -> dict[str, Distribution]:
    """The space with each preset written out as the conditional choice it stands for."""
    out: dict[str, Distribution] = {}
    for path, dist in space.items():
        if dist.preset is None:
            if dist.choice is not None:
                dist = dist.model_copy(
                    update={
                        "choice": [
                            b.model_copy(update={"space": expand_presets(b.space)})
                            if isinstance(b, Branch)
                            else b
                            for b in dist.choice
                        ]
                    }
                )
            out[path] = dist
            continue
        if path != "optimizer":
            raise ValueError(f"space.{path}: preset optimizer_family goes at the path optimizer")
        out["optimizer.name"] = optimizer_family(dist.names or list(OPTIMIZER_NAMES))
    return out


def optimizer_family(names: list[str]) -> Distribution:
    adam_betas = {
        "optimizer.betas.0": Distribution(uniform=(0.8, 0.99)),
        "optimizer.betas.1": Distribution(uniform=(0.9, 0.9999)),
    }
    extra: dict[str, dict[str, Distribution]] = {
        "sgd": {"optimizer.momentum": Distribution(uniform=(0.0, 0.99))},
        "rmsprop": {"optimizer.alpha": Distribution(uniform=(0.9, 0.999))},
        **{n: adam_betas for n in ("adam", "adamw", "nadam", "adamax")},
    }
    return Distribution(
        choice=[Branch(value=n, space=extra[n]) if n in extra else n for n in names]
    )


def grid_points(space: dict[str, Distribution]) -> list[dict[str, Any]] | None:
    """Every combination of a finite, unconditional space (for the grid sampler); None
    when some parameter is continuous or conditional."""
    points: list[dict[str, Any]] = [{}]
    for path, dist in space.items():
        values = dist.values()
        if values is None or dist.branches():
            return None
        points = [p | {path: v} for p in points for v in values]
        if len(points) > 100 * MAX_GRID_POINTS:
            break
    return points
