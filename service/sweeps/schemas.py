"""Request examples and response shapes of the sweeps API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.jobs.states import JobStatus
from service.projects.schemas import Organised
from service.sweeps.spec import ComparisonSpec, SweepSpec
from service.sweeps.states import SweepKind, SweepStatus, TrialState

EXAMPLE_SWEEP: dict[str, Any] = {
    "name": "digits lr and optimizer",
    "base": {
        "dataset": {"name": "digits"},
        "model": {"kind": "mlp", "hidden": [64]},
        "training": {"epochs": 8},
    },
    "space": {
        "optimizer.name": {"choice": ["sgd", "adam"]},
        "optimizer.lr": {"loguniform": [0.0001, 0.1]},
        "optimizer.weight_decay": {"uniform": [0.0, 0.001]},
    },
    "sampler": {"name": "random", "seed": 7},
    "pruner": {"name": "asha", "grace": 2, "reduction_factor": 3},
    "objective": {"metric": "val_accuracy", "direction": "max", "measure": "best"},
    "max_trials": 20,
    "parallelism": 2,
}

EXAMPLE_GRID: dict[str, Any] = {
    "base": {"dataset": {"name": "iris"}, "training": {"epochs": 5}},
    "space": {"optimizer.lr": {"grid": [0.001, 0.01, 0.1]}},
    "sampler": {"name": "grid"},
    "objective": {"metric": "val_loss"},
    "repeats": 3,
}

EXAMPLE_PRESET: dict[str, Any] = {
    "base": {"dataset": {"name": "digits"}, "training": {"epochs": 5}},
    "space": {
        "optimizer": {"preset": "optimizer_family", "names": ["sgd", "adam", "rmsprop"]},
        "optimizer.lr": {"loguniform": [0.0001, 0.1]},
    },
    "sampler": {"name": "tpe", "seed": 1},
    "max_trials": 10,
}

EXAMPLE_COMPARISON: dict[str, Any] = {
    "name": "sgd vs momentum vs adam",
    "base": {"dataset": {"name": "digits"}, "training": {"epochs": 8}},
    "configurations": [
        {"label": "sgd", "set": {"optimizer.name": "sgd", "optimizer.lr": 0.05}},
        {
            "label": "sgd+momentum",
            "set": {"optimizer.name": "sgd", "optimizer.lr": 0.05, "optimizer.momentum": 0.9},
        },
        {"label": "adam", "set": {"optimizer.name": "adam", "optimizer.lr": 0.001}},
    ],
    "objective": {"metric": "val_accuracy"},
    "repeats": 5,
}


class TrialCounts(BaseModel):
    """Trials by state: ``queued`` (all its jobs wait for a worker), ``running``,
    ``complete`` (every seed succeeded), ``pruned``, ``failed``, ``cancelled``."""

    queued: int = 0
    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    cancelled: int = 0


class ObjectiveRead(BaseModel):
    metric: str = Field(examples=["val_accuracy"])
    direction: Literal["min", "max"]
    measure: Literal["best", "last"] = Field(
        description="A trial's job is scored by its best epoch or by its last."
    )


class BestTrial(BaseModel):
    number: int
    label: str | None = Field(None, description="The configuration's label (comparisons).")
    params: dict[str, Any] = Field(
        description="Dotted path → the value the trial set.",
        examples=[{"optimizer.name": "adam", "optimizer.lr": 0.0031}],
    )
    value: float = Field(description="The trial's objective: the mean over its seeds.")
    job_ids: list[str] = Field(description="The trial's jobs, one per seed.")


class AutoBounds(BaseModel):
    """The range test that sets a sweep's "auto" ends, and what it set."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    job_id: str = Field(description="The range-test job (GET /v1/jobs/{id}/result).")
    paths: list[str] = Field(description='The space\'s paths with an "auto" end.')
    bounds: dict[str, Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        None,
        description="Path → [low, high] as the trials sample it; absent until the test ends.",
        examples=[{"optimizer.lr": [0.0014, 0.14]}],
    )
    lr_at_minimum: float | None = Field(
        None, description="The rate at the smoothed loss's minimum: the upper end."
    )
    why: str | None = Field(None, description="How the ends were chosen, in words.")


class SweepCreate(SweepSpec, Organised):
    """``POST /v1/sweeps``: a sweep spec, with ``project`` (its trials join it too),
    ``tags`` and ``note`` beside its sections."""


class ComparisonCreate(ComparisonSpec, Organised):
    """``POST /v1/comparisons``: a comparison spec, with ``project``, ``tags`` and
    ``note`` beside its sections."""


class SweepRead(BaseModel):
    id: str
    name: str
    kind: SweepKind
    status: SweepStatus = Field(description="running → succeeded | failed | cancelled")
    status_reason: str | None = Field(None, description="How it ended, in words.")
    task: str = Field(description="classification or regression")
    created_at: datetime
    finished_at: datetime | None = None
    cancel_requested: bool
    spec: dict[str, Any] = Field(
        description="The stored spec: as sent, presets written out, every default resolved "
        "(sampler seed, max_trials, pruner measure, objective direction, seeds)."
    )
    max_trials: int = Field(
        description="Trials it creates at most: a search's max_trials, a comparison's "
        "configurations."
    )
    parallelism: int
    repeats: int = Field(description="Seeds per configuration (jobs per trial).")
    trials_created: int
    counts: TrialCounts
    epochs_spent: int = Field(description="Epochs run by all of the sweep's jobs together.")
    objective: ObjectiveRead
    best: BestTrial | None = Field(None, description="The best complete trial so far.")
    auto_bounds: AutoBounds | None = Field(
        None,
        description='With "auto" ends in the space: the range test that sets them. The '
        "trials begin once it has, and sample within its `bounds`; `spec.space` keeps "
        'saying "auto", as it was sent.',
    )
    project: str | None = Field(None, description="The project it is in, by name.")
    tags: dict[str, str] = Field(default_factory=dict, description="Its key → value tags.")
    note: str | None = Field(None, description="Its note.")
    links: dict[str, str]


class SweepPage(BaseModel):
    items: list[SweepRead]
    total: int
    limit: int
    offset: int


class TrialJob(BaseModel):
    id: str
    status: JobStatus
    repeat: int = Field(description="Which of the trial's seeds (0-based).")
    seed: int | None = Field(None, description="Its training.seed.")
    objective: float | None = Field(None, description="Its objective so far.")
    epochs_completed: int


class TrialRead(BaseModel):
    number: int
    state: TrialState
    label: str | None = Field(None, description="The configuration's label (comparisons).")
    params: dict[str, Any] = Field(description="Dotted path → the value the trial set.")
    value: float | None = Field(
        None,
        description="complete: the mean objective over its seeds; running or pruned: the "
        "objective so far of its (single) job; else null.",
    )
    epochs: int = Field(description="Epochs run by its jobs together.")
    jobs: list[TrialJob]


class TrialPage(BaseModel):
    items: list[TrialRead]
    total: int
    limit: int
    offset: int


class ParamImportance(BaseModel):
    name: str = Field(
        description="The parameter: its path, qualified by the branch it belongs to "
        "(`optimizer.momentum (optimizer.name=sgd)`).",
        examples=["optimizer.lr"],
    )
    importance: float = Field(ge=0, description="Its share of the objective's variance.")


class ImportanceRead(BaseModel):
    metric: str
    direction: Literal["min", "max"]
    method: str = Field(description="How it was computed.", examples=["fanova"])
    params: list[ParamImportance] = Field(description="Most important first; they sum to 1.")
    trials_used: int = Field(description="The complete trials it was computed from.")


class ConfigurationStats(BaseModel):
    number: int = Field(description="The trial number of the configuration.")
    label: str
    params: dict[str, Any]
    state: TrialState
    n: int = Field(description="Seeds that completed (with a finite objective).")
    mean: float | None = None
    std: float | None = Field(None, description="Sample standard deviation (n − 1); n ≥ 2.")
    ci95: list[float] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="95% confidence interval of the mean, from the t distribution; n ≥ 2.",
    )
    values: dict[str, float] = Field(
        description="Seed → objective, for the seeds that completed.",
        examples=[{"0": 0.962, "1": 0.958}],
    )


class PairedTest(BaseModel):
    """The best configuration against another, paired by seed (only seeds that completed
    in both)."""

    other: int = Field(description="The other configuration's trial number.")
    other_label: str
    n_pairs: int
    mean_difference: float | None = Field(None, description="Mean of best − other over pairs.")
    t: float | None = Field(None, description="Paired t statistic (null when undefined).")
    p_value: float | None = Field(
        None, description="Two-sided paired t-test (scipy.stats.ttest_rel); n_pairs ≥ 2."
    )
    wilcoxon_p: float | None = Field(
        None,
        description="Two-sided Wilcoxon signed-rank test; null with fewer than 2 pairs or "
        "when every difference is 0.",
    )
    holm_p: float | None = Field(
        None, description="p_value adjusted for the number of tests (Holm–Bonferroni)."
    )


class ComparisonRead(BaseModel):
    metric: str
    direction: Literal["min", "max"]
    seeds: list[int]
    configurations: list[ConfigurationStats]
    best: int | None = Field(
        None, description="Trial number of the best configuration by mean (by direction)."
    )
    tests: list[PairedTest]
