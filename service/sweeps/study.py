"""Optuna, rebuilt from our rows whenever a decision is needed.

The sweep's state is SQL (sweeps, sweep_trials, jobs): there is no Optuna storage to keep
in step with it. To sample trial n, or to judge a running trial after an epoch, an
in-memory study is filled with every trial so far — parameters, distributions, state,
value, intermediate values and the notes samplers and pruners leave in a trial's
system attributes — and asked once. Whatever the sampler or pruner noted is read back
and stored with the trial, so the next rebuild sees it. The sampler is seeded from the
sweep's seed and the trial number: the same history gives the same trial, and no two
trials share a random stream.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from service.jobs.states import JobStatus
from service.sweeps.spec import Distribution, PrunerSpec, SweepSpec, grid_points
from service.sweeps.states import TrialState

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


@dataclass
class JobRow:
    id: str
    status: JobStatus
    repeat: int
    objective: float | None = None
    intermediate: dict[str, float] = field(default_factory=dict)
    pruner_attrs: dict[str, Any] = field(default_factory=dict)
    epochs_completed: int = 0


@dataclass
class TrialRow:
    number: int
    params: dict[str, Any]
    optuna: dict[str, Any]
    jobs: list[JobRow] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return any(j.status in JobStatus.ACTIVE for j in self.jobs)

    @property
    def state(self) -> TrialState:
        """Its state from its jobs' (see :meth:`TrialState.of`)."""
        scored = all(j.objective is not None and math.isfinite(j.objective) for j in self.jobs)
        return TrialState.of([j.status for j in self.jobs], scored=scored)

    def outcome(self) -> tuple[Outcome, float | None]:
        """(state, value) in Optuna's terms: ``running`` while a job is queued or running;
        ``complete`` with the mean objective of its seeds once all succeeded; ``pruned``;
        else ``fail``."""
        state = self.state
        if state == TrialState.COMPLETE:
            return "complete", statistics.fmean(j.objective for j in self.jobs)  # type: ignore[misc]
        return OUTCOMES[state], None


#: A trial's state as Optuna's ``TrialState`` names it (one name for failed and cancelled).
Outcome = Literal["running", "complete", "pruned", "fail"]
OUTCOMES: dict[TrialState, Outcome] = {
    TrialState.QUEUED: "running",
    TrialState.RUNNING: "running",
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAILED: "fail",
    TrialState.CANCELLED: "fail",
}


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# -- what Optuna does not make public -----------------------------------------------
# Rebuilding a study from SQL rows, and asking its pruner about one running trial, needs
# three things Optuna keeps private: a study's storage (``Study._storage``), a trial's id
# in it (``Trial._trial_id``, ``FrozenTrial._trial_id``), and a live ``Trial`` made of a
# stored one. They are used through these three functions only; pyproject.toml caps
# Optuna below its next major, and tests/service/sweeps/test_optuna_private.py fails,
# naming them, if a release changes them.


def trial_id(trial: Any) -> int:
    """The storage id of a ``Trial`` or ``FrozenTrial``."""
    return int(trial._trial_id)


def stored_trial(study: Any, trial_id: int) -> Any:
    """The ``FrozenTrial`` the study's storage holds now (params, system attrs)."""
    return study._storage.get_trial(trial_id)


def live_trial(study: Any, trial_id: int) -> Any:
    """A ``Trial`` of the stored trial ``trial_id``: what a pruner is asked through."""
    return _optuna().trial.Trial(study, trial_id)


def sampler_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number * 7_919 + 1) % 2**32


def make_sampler(spec: SweepSpec, seed: int, number: int) -> optuna.samplers.BaseSampler:
    optuna = _optuna()
    s = spec.sampler
    rng_seed = sampler_seed(seed, number)
    startup = {} if s.n_startup_trials is None else {"n_startup_trials": s.n_startup_trials}
    if s.name == "grid":
        points = grid_points(spec.space) or []
        search = {path: list(dict.fromkeys(p[path] for p in points)) for path in spec.space}
        # The sweep's own seed, not the trial's: the grid's order is shuffled with it, and
        # a trial's grid_id must mean the same point in every rebuild.
        return optuna.samplers.GridSampler(search, seed=seed)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=rng_seed)
    if s.name == "tpe":
        return optuna.samplers.TPESampler(seed=rng_seed, **startup)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=rng_seed, warn_independent_sampling=False, **startup
        )
    return optuna.samplers.GPSampler(seed=rng_seed, **startup)


def max_steps(spec: SweepSpec) -> int:
    """The last step a trial can report: its epochs, or 100 (percent) for progress."""
    if spec.pruner.measure == "progress":
        return 100
    epochs = [spec.base.training.epochs]
    for path, dist in spec.space.items():
        if path == "training.epochs":
            epochs += [int(v) for v in dist.corners() if isinstance(v, int | float)]
    return max(epochs)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    optuna = _optuna()
    p: PrunerSpec = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.grace
        )
    if p.name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.grace, reduction_factor=p.reduction_factor, min_early_stopping_rate=0
        )
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.grace,
            max_resource=max(max_steps(spec), p.grace + 1),
            reduction_factor=p.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def step_of(measure: str, epoch: int, epochs: int) -> int:
    """The pruner's step of ``epoch`` (1-based) in a run of ``epochs``."""
    if measure == "progress":
        return max(1, round(100 * epoch / epochs))
    return epoch


# -- the study ---------------------------------------------------------------------


def _frozen(trial: TrialRow, *, running_override: JobRow | None = None) -> Any:
    optuna = _optuna()
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState as OptunaState

    record = trial.optuna or {}
    dists = {k: json_to_distribution(v) for k, v in record.get("distributions", {}).items()}
    params = {k: v for k, v in record.get("params", {}).items() if k in dists}
    jobs = [
        running_override if running_override and j.id == running_override.id else j
        for j in trial.jobs
    ]
    state, value = TrialRow(trial.number, trial.params, record, jobs).outcome()
    if running_override is not None:
        state = "running"
    only = jobs[0] if len(jobs) == 1 else None
    intermediate = (
        {int(k): v for k, v in only.intermediate.items() if v is not None and math.isfinite(v)}
        if only is not None
        else {}
    )
    system_attrs = dict(record.get("system_attrs", {}))
    if only is not None:
        system_attrs |= only.pruner_attrs
    states = {
        "running": OptunaState.RUNNING,
        "complete": OptunaState.COMPLETE,
        "pruned": OptunaState.PRUNED,
        "fail": OptunaState.FAIL,
    }
    return optuna.trial.create_trial(
        state=states[state],
        value=value if state == "complete" else None,
        params=params,
        distributions=dists,
        intermediate_values=intermediate,
        system_attrs=system_attrs,
    )


def build_study(
    sweep_id: str,
    spec: SweepSpec,
    trials: Sequence[TrialRow],
    *,
    sampler: Any = None,
    running_override: JobRow | None = None,
    override_number: int | None = None,
) -> optuna.Study:
    optuna = _optuna()
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        study_name=f"sweep-{sweep_id}",
        sampler=sampler or optuna.samplers.RandomSampler(seed=0),
        pruner=make_pruner(spec),
        direction="maximize" if spec.objective.mode == "max" else "minimize",
    )
    for t in sorted(trials, key=lambda t: t.number):
        over = running_override if t.number == override_number else None
        study.add_trial(_frozen(t, running_override=over))
    return study


def suggest(trial: Any, space: dict[str, Distribution], qualifier: str = "") -> dict[str, Any]:
    """Draw one value per path of ``space`` (define-by-run: a branch's own parameters only
    when its value is drawn). Parameters inside a branch are named with the branch,
    ``optimizer.momentum (optimizer.name=sgd)``, so a path may range differently per
    branch."""
    out: dict[str, Any] = {}
    for path, dist in space.items():
        name = f"{path}{qualifier}"
        kind = dist.kind
        if kind in ("uniform", "loguniform"):
            low, high = dist.given(kind)
            value: Any = trial.suggest_float(name, low, high, log=kind == "loguniform")
        elif kind == "int":
            low, high = dist.int_  # type: ignore[misc]
            value = trial.suggest_int(name, low, high, step=dist.step or 1, log=bool(dist.log))
        else:
            value = trial.suggest_categorical(name, dist.values())
        out[path] = value
        sub = dist.branches().get(value)
        if sub:
            out |= suggest(trial, sub, f" ({path}={value})")
    return out


def sample(
    sweep_id: str, spec: SweepSpec, seed: int, trials: Sequence[TrialRow], number: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trial ``number``'s values (path → value) and its record for later rebuilds."""
    from optuna.distributions import distribution_to_json

    study = build_study(sweep_id, spec, trials, sampler=make_sampler(spec, seed, number))
    trial = study.ask()
    if trial.number != number:  # the rows have a gap: never expected, never hidden
        raise RuntimeError(f"sweep {sweep_id}: trial {number} would be Optuna's {trial.number}")
    params = suggest(trial, spec.space)
    frozen = stored_trial(study, trial_id(trial))
    record = {
        "params": dict(frozen.params),
        "distributions": {k: distribution_to_json(d) for k, d in frozen.distributions.items()},
        "system_attrs": dict(frozen.system_attrs),
    }
    return params, record


@dataclass
class Judgement:
    prune: bool
    attrs: dict[str, Any]
    reason: str | None = None


def judge(
    sweep_id: str, spec: SweepSpec, trials: Sequence[TrialRow], number: int, job: JobRow, step: int
) -> Judgement:
    """Ask the pruner about ``job`` (trial ``number``, its intermediate values up to
    ``step`` in ``job``) against every other trial of the sweep."""
    study = build_study(sweep_id, spec, trials, running_override=job, override_number=number)
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    trial = live_trial(study, trial_id(frozen))
    prune = bool(trial.should_prune())
    after = stored_trial(study, trial_id(frozen)).system_attrs
    record_attrs: dict[str, Any] = next(
        (t.optuna.get("system_attrs", {}) for t in trials if t.number == number), {}
    )
    attrs = {k: v for k, v in after.items() if record_attrs.get(k) != v}
    reason = None
    if prune:
        value = job.intermediate.get(str(step))
        reason = (
            f"pruned by {spec.pruner.name} at step {step} ({spec.pruner.measure}): "
            f"{spec.objective.metric} {value:.6g} was not among the best"
            if value is not None
            else f"pruned by {spec.pruner.name} at step {step}"
        )
    return Judgement(prune, attrs, reason)


def importance(sweep_id: str, spec: SweepSpec, trials: Sequence[TrialRow]) -> dict[str, float]:
    """fANOVA importance of each parameter every completed trial has, summing to 1."""
    optuna = _optuna()
    study = build_study(sweep_id, spec, trials)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
