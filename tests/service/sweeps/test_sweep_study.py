"""Optuna rebuilt from rows (service/sweeps/study.py): sampling is a function of the
history and the seed, conditional spaces stay conditional, the grid is enumerated once,
and the pruners judge a running trial against the others as Optuna would. No database:
the rows are built here as the driver's ``load_trials`` returns them."""

from __future__ import annotations

from typing import Any

import pytest

from service.jobs.states import JobStatus
from service.sweeps.spec import SweepSpec, expand_presets, grid_points
from service.sweeps.states import TrialState
from service.sweeps.study import (
    OUTCOMES,
    JobRow,
    TrialRow,
    build_study,
    judge,
    make_pruner,
    make_sampler,
    max_steps,
    sample,
    sampler_seed,
    step_of,
)

SWEEP = "00000000-0000-4000-8000-000000000001"


def spec(**kw: Any) -> SweepSpec:
    """A sweep spec as the driver parses it from the stored spec: presets written out,
    the pruner's measure resolved."""
    data = {
        "space": {"optimizer.lr": {"loguniform": [1e-4, 1e-1]}},
        "sampler": {"name": "random", "seed": 7},
    } | kw
    data.setdefault("pruner", {})
    data["pruner"] = {"measure": "epoch"} | data["pruner"]
    s = SweepSpec.model_validate(data)
    return s.model_copy(update={"space": expand_presets(s.space)})


def job(
    status: str = JobStatus.RUNNING,
    objective: float | None = None,
    curve: dict[int, float] | None = None,
    attrs: dict[str, Any] | None = None,
    repeat: int = 0,
    job_id: str | None = None,
) -> JobRow:
    intermediate = {str(k): v for k, v in (curve or {}).items()}
    return JobRow(
        job_id or f"job-{id(intermediate)}",
        status,
        repeat,
        objective,
        intermediate,
        dict(attrs or {}),
        max((curve or {0: 0}).keys()),
    )


def grow(s: SweepSpec, n: int, *, seed: int = 7, status: str = JobStatus.QUEUED) -> list[TrialRow]:
    """Trials 0..n-1 sampled one after the other, each left with one job of ``status``."""
    trials: list[TrialRow] = []
    for number in range(n):
        params, record = sample(SWEEP, s, seed, trials, number)
        trials.append(TrialRow(number, params, record, [job(status, job_id=f"j{number}")]))
    return trials


# -- sampling ----------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes", "gp"])
def test_sample_is_a_function_of_the_history_and_the_seed(sampler: str) -> None:
    s = spec(
        space={
            "optimizer.lr": {"loguniform": [1e-4, 1e-1]},
            "model.dropout": {"uniform": [0.0, 0.5]},
            "training.batch_size": {"int": [16, 128], "step": 16},
        },
        sampler={"name": sampler, "seed": 7, "n_startup_trials": 2},
    )
    trials = grow(s, 3)
    for i, t in enumerate(trials):  # a history with values for the model-based samplers
        t.jobs = [job(JobStatus.SUCCEEDED, 1.0 - 0.1 * i, {1: 1.0 - 0.1 * i}, job_id=f"j{i}")]
    a = sample(SWEEP, s, 7, trials, 3)
    b = sample(SWEEP, s, 7, trials, 3)
    assert a == b
    params, record = a
    assert set(params) == {"optimizer.lr", "model.dropout", "training.batch_size"}
    assert 1e-4 <= params["optimizer.lr"] <= 1e-1
    assert 0.0 <= params["model.dropout"] <= 0.5
    assert params["training.batch_size"] in range(16, 129, 16)
    assert set(record) == {"params", "distributions", "system_attrs"}
    assert set(record["distributions"]) == set(params)


def test_sample_differs_across_trial_numbers_and_seeds() -> None:
    s = spec()
    trials = grow(s, 6)
    values = [t.params["optimizer.lr"] for t in trials]
    assert len(set(values)) == len(values)
    assert sample(SWEEP, s, 8, trials[:2], 2) != sample(SWEEP, s, 7, trials[:2], 2)
    assert sampler_seed(7, 1) != sampler_seed(7, 2) != sampler_seed(8, 2)


def test_sample_refuses_a_gap_in_the_trials() -> None:
    s = spec()
    trials = grow(s, 2)
    with pytest.raises(RuntimeError, match="trial 3 would be Optuna's 2"):
        sample(SWEEP, s, 7, trials, 3)


def test_conditional_space_draws_a_branch_only_with_its_value() -> None:
    s = spec(
        space={
            "optimizer": {
                "preset": "optimizer_family",
                "names": ["sgd", "adam", "rmsprop", "adagrad"],
            },
            "optimizer.lr": {"loguniform": [1e-3, 1e-1]},
        }
    )
    trials = grow(s, 40)
    seen = set()
    for t in trials:
        name = t.params["optimizer.name"]
        seen.add(name)
        extra = set(t.params) - {"optimizer.name", "optimizer.lr"}
        expected = {
            "sgd": {"optimizer.momentum"},
            "adam": {"optimizer.betas.0", "optimizer.betas.1"},
            "rmsprop": {"optimizer.alpha"},
            "adagrad": set(),
        }[name]
        assert extra == expected, (name, t.params)
        if name == "sgd":
            assert 0.0 <= t.params["optimizer.momentum"] <= 0.99
        # Optuna's names carry the branch, so one path may range differently per branch
        for path in expected:
            assert f"{path} (optimizer.name={name})" in t.optuna["params"]
    assert seen == {"sgd", "adam", "rmsprop", "adagrad"}


def test_conditional_space_with_tpe_after_a_history() -> None:
    s = spec(
        space={"optimizer": {"preset": "optimizer_family", "names": ["sgd", "adam"]}},
        sampler={"name": "tpe", "seed": 1, "n_startup_trials": 3},
    )
    trials = grow(s, 6, seed=1)
    for t in trials:
        t.jobs = [
            job(JobStatus.SUCCEEDED, 0.3 if t.params["optimizer.name"] == "sgd" else 0.9, {1: 0.5})
        ]
    params, _ = sample(SWEEP, s, 1, trials, 6)
    assert ("optimizer.momentum" in params) == (params["optimizer.name"] == "sgd")


def test_grid_enumerates_each_point_once_while_earlier_trials_run() -> None:
    s = spec(
        space={
            "optimizer.lr": {"grid": [0.1, 0.01, 0.001]},
            "optimizer.name": {"choice": ["sgd", "adam"]},
        },
        sampler={"name": "grid", "seed": 11},
    )
    points = grid_points(s.space)
    assert points is not None and len(points) == 6
    trials: list[TrialRow] = []
    for number in range(6):
        params, record = sample(SWEEP, s, 11, trials, number)
        # the same history rebuilt gives the same point
        assert sample(SWEEP, s, 11, trials, number) == (params, record)
        # earlier trials: some still running, some ended in every way
        status = [
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.PRUNED,
            JobStatus.RUNNING,
        ][number]
        objective = 0.5 if status == JobStatus.SUCCEEDED else None
        trials.append(
            TrialRow(number, params, record, [job(status, objective, job_id=str(number))])
        )
    got = [tuple(sorted(t.params.items())) for t in trials]
    assert sorted(got) == sorted(tuple(sorted(p.items())) for p in points)


def test_grid_trials_keep_their_points_when_rebuilt_later() -> None:
    s = spec(
        space={"optimizer.lr": {"grid": [0.1, 0.01, 0.001, 0.0001]}},
        sampler={"name": "grid", "seed": 5},
    )
    early = grow(s, 2, seed=5, status=JobStatus.RUNNING)
    # trial 2 drawn while 0 and 1 run, and again once they have ended
    first, _ = sample(SWEEP, s, 5, early, 2)
    for t in early:
        t.jobs = [job(JobStatus.SUCCEEDED, 0.4, {1: 0.4}, job_id=t.jobs[0].id)]
    second, _ = sample(SWEEP, s, 5, early, 2)
    assert first == second


def test_grid_order_depends_on_the_sweep_seed() -> None:
    space = {"training.batch_size": {"grid": [8, 16, 24, 32, 40, 48, 56, 64]}}
    orders = {
        tuple(
            t.params["training.batch_size"]
            for t in grow(spec(space=space, sampler={"name": "grid", "seed": seed}), 8, seed=seed)
        )
        for seed in (1, 2, 3)
    }
    assert len(orders) > 1
    for order in orders:
        assert sorted(order) == space["training.batch_size"]["grid"]


def test_grid_with_an_int_with_step() -> None:
    s = spec(
        space={"training.batch_size": {"int": [16, 64], "step": 16}},
        sampler={"name": "grid", "seed": 0},
    )
    got = sorted(t.params["training.batch_size"] for t in grow(s, 4, seed=0))
    assert got == [16, 32, 48, 64]


def test_make_sampler_kinds() -> None:
    import optuna

    kinds = {
        "grid": optuna.samplers.GridSampler,
        "random": optuna.samplers.RandomSampler,
        "tpe": optuna.samplers.TPESampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
    }
    for name, cls in kinds.items():
        space = {"optimizer.lr": {"grid": [0.1, 0.2]}}
        assert isinstance(make_sampler(spec(space=space, sampler={"name": name}), 1, 0), cls)


# -- pruning -----------------------------------------------------------------------


def asha_history(s: SweepSpec, values: list[float]) -> list[TrialRow]:
    """Trials that each passed rung 0 (step 1) with the given value, judged there one
    after the other as the workers would, then completed."""
    trials: list[TrialRow] = []
    for number, v in enumerate(values):
        params, record = sample(SWEEP, s, 7, trials, number)
        me = job(JobStatus.RUNNING, v, {1: v}, job_id=f"j{number}")
        t = TrialRow(number, params, record, [me])
        verdict = judge(SWEEP, s, [*trials, t], number, me, 1)
        me.pruner_attrs = verdict.attrs
        me.status = JobStatus.SUCCEEDED
        trials.append(t)
    return trials


def test_asha_prunes_a_clearly_worse_trial_and_keeps_a_better_one() -> None:
    s = spec(pruner={"name": "asha", "grace": 1, "reduction_factor": 3})
    trials = asha_history(s, [0.50, 0.55, 0.60, 0.65, 0.70, 0.75])
    params, record = sample(SWEEP, s, 7, trials, 6)

    worse = job(JobStatus.RUNNING, 3.0, {1: 3.0}, job_id="worse")
    verdict = judge(SWEEP, s, [*trials, TrialRow(6, params, record, [worse])], 6, worse, 1)
    assert verdict.prune
    assert verdict.reason is not None
    assert "pruned by asha at step 1" in verdict.reason and "val_loss 3" in verdict.reason
    assert verdict.attrs == {"completed_rung_0": 3.0}  # the rung note, to be stored

    better = job(JobStatus.RUNNING, 0.1, {1: 0.1}, job_id="better")
    verdict = judge(SWEEP, s, [*trials, TrialRow(6, params, record, [better])], 6, better, 1)
    assert not verdict.prune
    assert verdict.reason is None
    assert verdict.attrs == {"completed_rung_0": 0.1}


def test_asha_respects_the_direction() -> None:
    s = spec(
        pruner={"name": "asha", "grace": 1},
        objective={"metric": "val_accuracy"},
    )
    trials = asha_history(s, [0.80, 0.82, 0.84, 0.86, 0.88, 0.90])
    params, record = sample(SWEEP, s, 7, trials, 6)
    low = job(JobStatus.RUNNING, 0.1, {1: 0.1}, job_id="low")
    assert judge(SWEEP, s, [*trials, TrialRow(6, params, record, [low])], 6, low, 1).prune
    high = job(JobStatus.RUNNING, 0.99, {1: 0.99}, job_id="high")
    assert not judge(SWEEP, s, [*trials, TrialRow(6, params, record, [high])], 6, high, 1).prune


def test_asha_does_not_judge_before_its_grace() -> None:
    s = spec(pruner={"name": "asha", "grace": 2})
    trials = asha_history(s, [0.5, 0.5, 0.5])  # judged at step 1: below grace, no notes
    assert all(t.jobs[0].pruner_attrs == {} for t in trials)
    params, record = sample(SWEEP, s, 7, trials, 3)
    worse = job(JobStatus.RUNNING, 9.0, {1: 9.0}, job_id="w")
    verdict = judge(SWEEP, s, [*trials, TrialRow(3, params, record, [worse])], 3, worse, 1)
    assert not verdict.prune and verdict.attrs == {}


def median_case(n_complete: int, grace: int, startup: int, step: int, value: float) -> bool:
    s = spec(pruner={"name": "median", "grace": grace, "n_startup_trials": startup})
    trials = grow(s, n_complete + 1)
    for t in trials[:n_complete]:
        t.jobs = [job(JobStatus.SUCCEEDED, 0.3, {1: 0.5, 2: 0.4, 3: 0.3}, job_id=f"c{t.number}")]
    me = job(JobStatus.RUNNING, value, {e: value for e in range(1, step + 1)}, job_id="me")
    trials[-1].jobs = [me]
    return judge(SWEEP, s, trials, n_complete, me, step).prune


def test_median_prunes_a_worse_trial_after_its_startup_and_grace() -> None:
    assert median_case(n_complete=3, grace=1, startup=2, step=2, value=5.0)
    assert not median_case(n_complete=3, grace=1, startup=2, step=2, value=0.1)


def test_median_waits_for_n_startup_trials() -> None:
    assert not median_case(n_complete=3, grace=1, startup=4, step=2, value=5.0)
    assert median_case(n_complete=4, grace=1, startup=4, step=2, value=5.0)


def test_median_waits_for_the_grace_step() -> None:
    assert not median_case(n_complete=3, grace=2, startup=1, step=1, value=5.0)
    assert median_case(n_complete=3, grace=2, startup=1, step=2, value=5.0)


def test_median_ignores_pruned_and_failed_trials_for_startup() -> None:
    s = spec(pruner={"name": "median", "grace": 1, "n_startup_trials": 2})
    trials = grow(s, 4)
    trials[0].jobs = [job(JobStatus.SUCCEEDED, 0.3, {1: 0.5, 2: 0.4}, job_id="a")]
    trials[1].jobs = [job(JobStatus.PRUNED, 0.9, {1: 0.9}, job_id="b")]
    trials[2].jobs = [job(JobStatus.FAILED, None, {}, job_id="c")]
    me = job(JobStatus.RUNNING, 5.0, {1: 5.0, 2: 5.0}, job_id="me")
    trials[3].jobs = [me]
    assert not judge(SWEEP, s, trials, 3, me, 2).prune  # one complete trial < 2


def test_none_pruner_never_prunes() -> None:
    s = spec(pruner={"name": "none"})
    trials = grow(s, 4)
    for t in trials[:3]:
        t.jobs = [job(JobStatus.SUCCEEDED, 0.1, {1: 0.1, 2: 0.1}, job_id=f"c{t.number}")]
    me = job(JobStatus.RUNNING, 50.0, {1: 50.0, 2: 50.0}, job_id="me")
    trials[3].jobs = [me]
    assert not judge(SWEEP, s, trials, 3, me, 2).prune


def test_hyperband_can_prune() -> None:
    s = spec(
        pruner={"name": "hyperband", "grace": 1, "reduction_factor": 3},
        base={"training": {"epochs": 9}},
    )
    assert max_steps(s) == 9
    import optuna

    assert isinstance(make_pruner(s), optuna.pruners.HyperbandPruner)
    # build and judge without errors; whether it prunes depends on the bracket
    trials = grow(s, 2)
    me = job(JobStatus.RUNNING, 1.0, {1: 1.0}, job_id="me")
    trials[1].jobs = [me]
    verdict = judge(SWEEP, s, trials, 1, me, 1)
    assert isinstance(verdict.prune, bool)


def test_make_pruner_kinds() -> None:
    import optuna

    assert isinstance(make_pruner(spec(pruner={"name": "none"})), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(spec(pruner={"name": "median"})), optuna.pruners.MedianPruner)
    assert isinstance(
        make_pruner(spec(pruner={"name": "asha"})), optuna.pruners.SuccessiveHalvingPruner
    )


def test_max_steps() -> None:
    assert max_steps(spec(base={"training": {"epochs": 7}})) == 7
    assert max_steps(spec(base={"training": {"epochs": 7}}, pruner={"measure": "progress"})) == 100
    assert (
        max_steps(
            spec(base={"training": {"epochs": 7}}, space={"training.epochs": {"int": [2, 12]}})
        )
        == 12
    )


@pytest.mark.parametrize(
    ("measure", "epoch", "epochs", "step"),
    [
        ("epoch", 1, 10, 1),
        ("epoch", 7, 10, 7),
        ("progress", 1, 4, 25),
        ("progress", 2, 4, 50),
        ("progress", 4, 4, 100),
        ("progress", 1, 3, 33),
        ("progress", 2, 3, 67),
        ("progress", 10, 20, 50),
        ("progress", 1, 1000, 1),  # never step 0
    ],
)
def test_step_of(measure: str, epoch: int, epochs: int, step: int) -> None:
    assert step_of(measure, epoch, epochs) == step


def test_progress_puts_runs_of_different_lengths_on_one_scale() -> None:
    assert step_of("progress", 3, 6) == step_of("progress", 5, 10) == 50


# -- trial outcomes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "state", "value"),
    [
        ([], "running", None),
        ([(JobStatus.QUEUED, None)], "running", None),
        ([(JobStatus.RUNNING, 0.4)], "running", None),
        ([(JobStatus.SUCCEEDED, 0.4)], "complete", 0.4),
        (
            [(JobStatus.SUCCEEDED, 0.2), (JobStatus.SUCCEEDED, 0.4), (JobStatus.SUCCEEDED, 0.9)],
            "complete",
            0.5,
        ),
        ([(JobStatus.SUCCEEDED, 0.2), (JobStatus.RUNNING, 0.4)], "running", None),
        ([(JobStatus.SUCCEEDED, 0.2), (JobStatus.QUEUED, None)], "running", None),
        ([(JobStatus.PRUNED, 0.7)], "pruned", None),
        ([(JobStatus.PRUNED, 0.7), (JobStatus.RUNNING, 0.3)], "running", None),
        ([(JobStatus.SUCCEEDED, 0.2), (JobStatus.PRUNED, 0.7)], "pruned", None),
        ([(JobStatus.FAILED, None)], "fail", None),
        ([(JobStatus.SUCCEEDED, 0.2), (JobStatus.FAILED, None)], "fail", None),
        ([(JobStatus.SUCCEEDED, 0.2), (JobStatus.CANCELLED, 0.3)], "fail", None),
        ([(JobStatus.DIVERGED, None)], "fail", None),
        ([(JobStatus.SUCCEEDED, None)], "fail", None),  # no objective recorded: nothing to score
        ([(JobStatus.SUCCEEDED, float("nan"))], "fail", None),
        ([(JobStatus.CANCELLED, None)], "fail", None),
    ],
)
def test_trial_outcome(
    jobs: list[tuple[str, float | None]], state: str, value: float | None
) -> None:
    trial = TrialRow(0, {}, {}, [JobRow(f"j{i}", s, i, v) for i, (s, v) in enumerate(jobs)])
    got_state, got_value = trial.outcome()
    assert got_state == state
    if value is None:
        assert got_value is None
    else:
        assert got_value == pytest.approx(value)
    assert trial.active == any(s in (JobStatus.QUEUED, JobStatus.RUNNING) for s, _ in jobs)


Q, R, S = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED
F, C, D, P = JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DIVERGED, JobStatus.PRUNED


@pytest.mark.parametrize(
    ("statuses", "scored", "state"),
    [
        ([], True, TrialState.QUEUED),  # its jobs are being created
        ([Q, Q], True, TrialState.QUEUED),
        ([Q, R], True, TrialState.RUNNING),
        ([S, Q], True, TrialState.RUNNING),
        ([P, R], True, TrialState.RUNNING),
        ([S, S], True, TrialState.COMPLETE),
        ([S, S], False, TrialState.FAILED),  # a seed scored nothing
        ([S, P], True, TrialState.PRUNED),
        ([C, P], True, TrialState.PRUNED),
        ([S, C], True, TrialState.CANCELLED),
        ([F, C], True, TrialState.CANCELLED),
        ([S, F], True, TrialState.FAILED),
        ([D], True, TrialState.FAILED),
    ],
)
def test_a_trials_state_follows_from_its_jobs(
    statuses: list[JobStatus], scored: bool, state: TrialState
) -> None:
    assert TrialState.of(statuses, scored=scored) == state
    objective = 0.5 if scored else None
    trial = TrialRow(0, {}, {}, [JobRow(f"j{i}", s, i, objective) for i, s in enumerate(statuses)])
    assert trial.state == state
    # Optuna's view folds failed and cancelled into one.
    assert trial.outcome()[0] == OUTCOMES[state]


def test_build_study_reflects_the_rows() -> None:
    from optuna.trial import TrialState

    s = spec()
    trials = grow(s, 4)
    trials[0].jobs = [job(JobStatus.SUCCEEDED, 0.25, {1: 0.3, 2: 0.25}, job_id="a")]
    trials[1].jobs = [job(JobStatus.PRUNED, 0.8, {1: 0.8}, job_id="b")]
    trials[2].jobs = [job(JobStatus.FAILED, None, {}, job_id="c")]
    study = build_study(SWEEP, s, trials)
    frozen = study.get_trials(deepcopy=False)
    assert [t.state for t in frozen] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
        TrialState.RUNNING,
    ]
    assert frozen[0].value == 0.25
    assert frozen[0].intermediate_values == {1: 0.3, 2: 0.25}
    assert frozen[0].params == {"optimizer.lr": trials[0].params["optimizer.lr"]}
    assert study.direction.name == "MINIMIZE"
